"""SQLite: the embedded default. One file beside the results, nothing to run; for one gateway, or
several on one host (SQLite's file locks do not hold on network file systems: use PostgreSQL there)."""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from gateway.job_store.sql import SqlJobStore, Transaction


class SqliteJobStore(SqlJobStore):
    # julianday('now') is the same instant throughout one statement, to the millisecond.
    now_sql = "((julianday('now') - 2440587.5) * 86400.0)"

    def __init__(self, path: Path) -> None:
        super().__init__()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        # WAL lets readers on other connections go on during a write; FULL makes each commit
        # durable (fsynced) before it returns, which "accepted" promises.
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=FULL")
        self._create_schema()

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        # IMMEDIATE takes the write lock up front: a claim's read and update see no other writer between them.
        self._connection.execute("BEGIN IMMEDIATE")
        try:
            yield self._connection
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise
        self._connection.execute("COMMIT")

    def close_connection(self) -> None:
        self._connection.close()
