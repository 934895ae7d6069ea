"""A real PostgreSQL server for the tests (Debian's `postgresql` package; .ci/run installs it)."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from tests.cluster import free_port


def _binaries() -> Path | None:
    """The directory holding initdb and pg_ctl: on PATH, or Debian's versioned one."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).resolve().parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


class PostgresServer:
    """initdb into a temporary folder, pg_ctl start on 127.0.0.1, trust authentication."""

    def __init__(self, root: Path) -> None:
        binaries = _binaries()
        if binaries is None:
            pytest.skip("no PostgreSQL server (apt-get install postgresql; .ci/run does)")
        self._bin = binaries
        self._data = root / "pgdata"
        self.port = free_port()
        # PostgreSQL refuses to run as root: CI containers are root, so run it as Debian's `postgres` user.
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        root.mkdir(parents=True, exist_ok=True)
        if self._as:
            user = pwd.getpwnam("postgres")
            os.chown(root, user.pw_uid, user.pw_gid)
        self._run("initdb", "-D", str(self._data), "-A", "trust", "-U", "revive", "--no-sync")
        self._run("pg_ctl", "-D", str(self._data), "-l", str(root / "server.log"), "-w", "-t", "60", "-o",
                  f"-c listen_addresses=127.0.0.1 -p {self.port} -k {root} -c fsync=off", "start")

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self._as, str(self._bin / tool), *args], check=True, capture_output=True, timeout=120)

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = f"revive_{secrets.token_hex(4)}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def url(self, database: str) -> str:
        return f"postgresql://revive@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self._data), "-m", "immediate", "stop")


def postgres_server() -> Iterator[PostgresServer]:
    # Not under pytest's temporary root: that is private to root (0700), and the server runs as `postgres`.
    root = Path(tempfile.mkdtemp(prefix="revive-pg-"))
    try:
        server = PostgresServer(root)
        yield server
        server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
