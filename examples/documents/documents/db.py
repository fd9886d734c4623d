"""The document platform's own tables, on SQLite (a file) or PostgreSQL (a URL, with an
optional `?schema=`), next to underway's. One connection per unit of work: each job opens its
own (`Database.session` as an underway dependency) and commits when the job succeeds."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SCHEMA = """
CREATE TABLE IF NOT EXISTS docflow_tenants (
    id              TEXT PRIMARY KEY,
    max_documents   INTEGER NOT NULL,
    max_bytes       INTEGER NOT NULL,
    webhook_url     TEXT,
    billing_status  TEXT NOT NULL DEFAULT 'active',
    grace_until     TEXT,
    uploads_blocked INTEGER NOT NULL DEFAULT 0,
    used_documents  INTEGER NOT NULL DEFAULT 0,
    used_bytes      INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS docflow_documents (
    id              TEXT PRIMARY KEY,
    tenant          TEXT NOT NULL REFERENCES docflow_tenants (id),
    name            TEXT NOT NULL,
    content         TEXT NOT NULL,
    size            INTEGER NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending',
    classification  TEXT,
    route           TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    retention_until TEXT NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS docflow_documents_status
    ON docflow_documents (tenant, status, created_at);
CREATE TABLE IF NOT EXISTS docflow_webhook_events (
    id         TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL REFERENCES docflow_tenants (id),
    event      TEXT NOT NULL,
    data       TEXT NOT NULL,
    status     TEXT NOT NULL DEFAULT 'pending',
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS docflow_audit (
    at       TEXT NOT NULL,
    tenant   TEXT NOT NULL,
    action   TEXT NOT NULL,
    subject  TEXT NOT NULL
)
"""


class Database:
    """The platform's tables at `url`: `sqlite:///path` or `postgresql://...[?schema=name]`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.postgres = url.startswith(("postgresql://", "postgres://"))
        if self.postgres:
            self._conninfo, self._schema = _split(url)
        elif url.startswith("sqlite:///"):
            self._path = url.removeprefix("sqlite:///")
        else:
            raise ValueError(f"the documents example takes sqlite:/// or postgresql:// URLs: {url}")

    def create_tables(self) -> None:
        with self.session() as db:
            if self.postgres and self._schema:
                db.run(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"')
            for statement in SCHEMA.split(";"):
                db.run(statement)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A connection for one unit of work: committed if the block succeeds, else rolled
        back; closed either way."""
        raw = self._connect()
        try:
            yield Session(raw, self.postgres)
            raw.commit()
        except BaseException:
            raw.rollback()
            raise
        finally:
            raw.close()

    def _connect(self) -> Any:
        if not self.postgres:
            conn = sqlite3.connect(self._path, timeout=30)
            conn.row_factory = sqlite3.Row
            # Readers never wait for the writer (jobs of several worker threads at once).
            conn.execute("PRAGMA journal_mode=WAL")
            return conn
        import psycopg
        from psycopg.rows import dict_row

        options = f"-c search_path={self._schema}" if self._schema else ""
        return psycopg.connect(self._conninfo, row_factory=dict_row, options=options)


class Session:
    """One connection's statements, written with `?` placeholders for both databases."""

    def __init__(self, raw: Any, postgres: bool) -> None:
        self.raw = raw
        self.postgres = postgres

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Execute one statement; returns the rows it changed."""
        if not sql.strip():
            return 0
        cursor = self.raw.execute(self._dialect(sql), tuple(params))
        return int(cursor.rowcount or 0)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cursor = self.raw.execute(self._dialect(sql), tuple(params))
        return [dict(row) for row in cursor.fetchall()]

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        found = self.rows(sql, params)
        return found[0] if found else None

    def _dialect(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql


def _split(url: str) -> tuple[str, str | None]:
    """The libpq URL without `schema=`, and the schema."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(("postgresql", parts.netloc, parts.path, rest, parts.fragment)), schema
