"""PostgreSQL: for several gateway replicas sharing the work (Kubernetes). Claims skip rows another
replica has locked, and every clock reading is the server's."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import Iterator

import psycopg

from gateway.job_store.sql import SCHEMA, SqlJobStore, Transaction

log = logging.getLogger(__name__)


class PostgresJobStore(SqlJobStore):
    placeholder = "%s"
    # clock_timestamp(), not now(): now() is frozen at the transaction's start.
    now_sql = "extract(epoch from clock_timestamp())::float8"
    claim_locking = "FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str, connect_seconds: float = 30.0) -> None:
        super().__init__()
        self._url = url
        self._connection = self._connect(connect_seconds)
        with self.transaction() as tx:  # one replica creates the schema; the others wait on this lock
            tx.execute("SELECT pg_advisory_xact_lock(7265766976)")
            for statement in SCHEMA:
                tx.execute(statement)

    def _connect(self, within: float) -> psycopg.Connection:
        """Connect, retrying while the server starts (pods come up in any order)."""
        deadline = time.monotonic() + within
        while True:
            try:
                return psycopg.connect(self._url, autocommit=True, connect_timeout=5)
            except psycopg.OperationalError as error:
                if time.monotonic() > deadline:
                    raise
                log.warning("waiting for the job database", extra={"error": str(error).strip()})
                time.sleep(1)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        if self._connection.closed or self._connection.broken:
            self._connection = self._connect(10)  # a restarted server or a dropped connection
        with self._connection.transaction():
            yield self._connection

    def close_connection(self) -> None:
        self._connection.close()
