"""Where job state lives: SQLite beside the results by default, PostgreSQL when replicas share work."""

from __future__ import annotations

from pathlib import Path

from gateway.job_store.sql import ACTIVE, FINISHED, Expired, SqlJobStore, StoredJob

__all__ = ["ACTIVE", "FINISHED", "Expired", "SqlJobStore", "StoredJob", "open_job_store"]


def open_job_store(url: str, results_dir: Path) -> SqlJobStore:
    """`url`: empty (SQLite in <results_dir>/jobs.sqlite3), sqlite:///path, or postgresql://..."""
    if not url:
        from gateway.job_store.sqlite import SqliteJobStore
        return SqliteJobStore(results_dir / "jobs.sqlite3")
    if url.startswith("sqlite:///"):
        from gateway.job_store.sqlite import SqliteJobStore
        return SqliteJobStore(Path(url.removeprefix("sqlite:///")))
    if url.startswith(("postgresql://", "postgres://")):
        from gateway.job_store.postgres import PostgresJobStore
        return PostgresJobStore(url)
    raise ValueError(f"--job-database: {url!r} is neither sqlite:///<path> nor postgresql://...")
