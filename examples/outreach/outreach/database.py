"""The outreach tool's own tables, on SQLite (a file) or PostgreSQL (a URL), through one small
connection type so that every query is written once.

Queries use `?` placeholders; on PostgreSQL they become `%s`. Times are Unix seconds (floats) on
both, so that comparisons need no dialect. A PostgreSQL URL may carry `?schema=name`, read the
same way as by underway, so the example's tables sit beside underway's in that schema.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

#: a row as the drivers give it
Row = tuple[Any, ...]

#: `{id}` is the dialect's auto-numbered primary key
TABLES = """
CREATE TABLE IF NOT EXISTS admins (
    email TEXT PRIMARY KEY,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL,
    refresh_token_expiry_time DOUBLE PRECISION NOT NULL,
    last_accessed_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS workspace_accounts (
    email TEXT PRIMARY KEY,
    password TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS google_accounts (
    email TEXT PRIMARY KEY,
    user_id INTEGER,
    refresh_token TEXT NOT NULL,
    authorized_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS campaigns (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0,
    replies INTEGER NOT NULL DEFAULT 0,
    positive_replies INTEGER NOT NULL DEFAULT 0,
    bounces INTEGER NOT NULL DEFAULT 0,
    last_reply_at DOUBLE PRECISION,
    last_positive_reply_at DOUBLE PRECISION
);
CREATE TABLE IF NOT EXISTS alerts (
    id {id},
    campaign_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    raised_at DOUBLE PRECISION NOT NULL,
    resolved_at DOUBLE PRECISION
);
CREATE TABLE IF NOT EXISTS email_accounts (
    id TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    warmup_reputation INTEGER NOT NULL,
    sent_today INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS campaign_accounts (
    campaign_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    PRIMARY KEY (campaign_id, account_id)
);
CREATE TABLE IF NOT EXISTS templates (
    campaign_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    subject TEXT NOT NULL,
    PRIMARY KEY (campaign_id, seq)
);
CREATE TABLE IF NOT EXISTS leads (
    id TEXT PRIMARY KEY,
    campaign_id TEXT NOT NULL,
    conversation TEXT NOT NULL,
    category TEXT
);
CREATE TABLE IF NOT EXISTS sync_runs (
    run_id TEXT PRIMARY KEY,
    step INTEGER NOT NULL,
    lead_offset INTEGER NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION
);
CREATE TABLE IF NOT EXISTS sync_log (
    id {id},
    run_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    detail TEXT NOT NULL
);
"""

_SERIAL = {
    "sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT",
    "postgresql": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
}


class Connection:
    """One connection to the outreach tables, in autocommit mode: `transaction()` groups
    statements that must commit together."""

    def __init__(self, raw: Any, dialect: str, on_close: Any) -> None:
        self._raw = raw
        self.dialect = dialect
        self._on_close = on_close
        self._depth = 0

    def execute(self, query: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        cursor = self._raw.execute(self._sql(query), tuple(params))
        return int(cursor.rowcount)

    def rows(self, query: str, params: Sequence[Any] = ()) -> list[Row]:
        return [tuple(row) for row in self._raw.execute(self._sql(query), tuple(params))]

    def row(self, query: str, params: Sequence[Any] = ()) -> Row | None:
        found = self.rows(query, params)
        return found[0] if found else None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """Commit what the block wrote, or roll all of it back if the block raises."""
        if self._depth:
            raise RuntimeError("transactions do not nest here; open one per unit of work")
        # IMMEDIATE takes SQLite's write lock at once, so two writers never deadlock mid-way.
        self._raw.execute("BEGIN IMMEDIATE" if self.dialect == "sqlite" else "BEGIN")
        self._depth = 1
        try:
            yield self
        except BaseException:
            self._raw.execute("ROLLBACK")
            raise
        else:
            self._raw.execute("COMMIT")
        finally:
            self._depth = 0

    def close(self) -> None:
        self._raw.close()
        self._on_close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _sql(self, query: str) -> str:
        return query if self.dialect == "sqlite" else query.replace("?", "%s")


class Database:
    """Where the outreach tables live: `sqlite:///path` or `postgresql://...[?schema=s]`."""

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite:///"):
            self.dialect = "sqlite"
            self._target = url.removeprefix("sqlite:///")
            self._schema: str | None = None
        elif url.startswith(("postgresql://", "postgres://")):
            self.dialect = "postgresql"
            self._target, self._schema = _split_schema(url)
        else:
            raise ValueError(
                f"unsupported database URL {url!r}: give sqlite:///path or postgresql://..."
            )
        self._lock = threading.Lock()
        #: connections open now, in this process (each job's scope opens one and closes it)
        self.open_connections = 0

    def connect(self) -> Connection:
        """A new connection; close it when done (a job's `db` dependency does)."""
        raw = self._connect_raw()
        with self._lock:
            self.open_connections += 1
        return Connection(raw, self.dialect, self._closed)

    def create_tables(self) -> None:
        """Create the tables that are missing; safe to call at every start."""
        conn = self.connect()
        try:
            if self._schema is not None:
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"')
            with conn.transaction():
                for statement in TABLES.format(id=_SERIAL[self.dialect]).split(";"):
                    if statement.strip():
                        conn.execute(statement)
        finally:
            conn.close()

    def _connect_raw(self) -> Any:
        if self.dialect == "sqlite":
            raw = sqlite3.connect(self._target, timeout=30, isolation_level=None,
                                  check_same_thread=False)  # fmt: skip
            raw.execute("PRAGMA journal_mode = WAL")
            return raw
        import psycopg

        options = None if self._schema is None else f"-c search_path={self._schema}"
        if options is None:
            return psycopg.connect(self._target, autocommit=True)
        return psycopg.connect(self._target, autocommit=True, options=options)

    def _closed(self) -> None:
        with self._lock:
            self.open_connections -= 1


def _split_schema(url: str) -> tuple[str, str | None]:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = urlencode([(k, v) for k, v in query if k != "schema"], quote_via=quote)
    return urlunsplit(("postgresql", parts.netloc, parts.path, rest, parts.fragment)), schema
