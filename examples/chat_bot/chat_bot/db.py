"""The bot's own tables, beside underway's in the same database: payment transactions and the
audit trail (database cleanup), the reply cache, user sessions, the services' last health and
the collected metrics. SQLite by default; PostgreSQL for a `postgresql://` URL (its optional
`?schema=` names the tables' schema, as in underway's URLs). Times are Unix seconds."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql

TABLES = (
    "CREATE TABLE IF NOT EXISTS cb_transactions (id text PRIMARY KEY, status text NOT NULL,"
    " created_at double precision NOT NULL)",
    "CREATE TABLE IF NOT EXISTS cb_audit (id text PRIMARY KEY, event text NOT NULL,"
    " at double precision NOT NULL)",
    "CREATE TABLE IF NOT EXISTS cb_cache (key text PRIMARY KEY, value text NOT NULL,"
    " expires_at double precision NOT NULL)",
    "CREATE TABLE IF NOT EXISTS cb_sessions (id text PRIMARY KEY, user_id bigint NOT NULL,"
    " expires_at double precision NOT NULL)",
    "CREATE TABLE IF NOT EXISTS cb_health (service text PRIMARY KEY, healthy integer NOT NULL,"
    " detail text NOT NULL, checked_at double precision NOT NULL)",
    "CREATE TABLE IF NOT EXISTS cb_metrics (at double precision NOT NULL, name text NOT NULL,"
    " value double precision NOT NULL, PRIMARY KEY (at, name))",
)

#: a transaction still unfinished after the cleanup age is stale: its payment never came
DELETE_STALE_TRANSACTIONS = (
    "DELETE FROM cb_transactions WHERE status = 'pending' AND created_at < %s"
)
TRIM_AUDIT = "DELETE FROM cb_audit WHERE at < %s"
DELETE_EXPIRED_CACHE = "DELETE FROM cb_cache WHERE expires_at <= %s"
DELETE_EXPIRED_SESSIONS = "DELETE FROM cb_sessions WHERE expires_at <= %s"
RECORD_HEALTH = """INSERT INTO cb_health (service, healthy, detail, checked_at)
    VALUES (%s, %s, %s, %s)
    ON CONFLICT (service) DO UPDATE SET healthy = excluded.healthy, detail = excluded.detail,
        checked_at = excluded.checked_at"""
RECORD_METRIC = "INSERT INTO cb_metrics (at, name, value) VALUES (%s, %s, %s)"
COUNT = {table: f"SELECT count(*) FROM {table}" for table in
         ("cb_transactions", "cb_audit", "cb_cache", "cb_sessions")}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Health:
    """A service's status as the latest health check saw it."""

    service: str
    healthy: bool
    detail: str
    checked_at: float


@dataclass(frozen=True, slots=True)
class Metric:
    at: float
    name: str
    value: float


class BotDatabase:
    """The bot's tables on one open connection, inside one transaction."""

    def __init__(self, conn: Any, placeholder: str) -> None:
        self._conn = conn
        self._placeholder = placeholder

    def run(self, statement: str, params: Sequence[Any] = ()) -> Any:
        """Execute `statement` (written with %s placeholders) on either store."""
        return self._conn.execute(statement.replace("%s", self._placeholder), tuple(params))

    def deleted(self, statement: str, before: float) -> int:
        """Run a DELETE with one time bound; the rows it removed."""
        count: int = self.run(statement, (before,)).rowcount
        return count

    def count(self, table: str) -> int:
        value: int = self.run(COUNT[table]).fetchone()[0]
        return value

    def record_health(self, health: Health) -> None:
        self.run(RECORD_HEALTH, (health.service, int(health.healthy), health.detail,
                                 health.checked_at))  # fmt: skip

    def health(self) -> list[Health]:
        rows = self.run("SELECT service, healthy, detail, checked_at FROM cb_health"
                        " ORDER BY service").fetchall()  # fmt: skip
        return [Health(service, bool(ok), detail, at) for service, ok, detail, at in rows]

    def record_metrics(self, at: float, values: dict[str, float]) -> None:
        for name, value in sorted(values.items()):
            self.run(RECORD_METRIC, (at, name, value))

    def metrics(self) -> list[Metric]:
        rows = self.run("SELECT at, name, value FROM cb_metrics ORDER BY at, name").fetchall()
        return [Metric(*row) for row in rows]


@contextlib.contextmanager
def open_database(url: str) -> Iterator[BotDatabase]:
    """The tables in one transaction: committed when the block ends, rolled back on an error."""
    if url.startswith("sqlite:///"):
        lite = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30)
        try:
            with lite:
                yield BotDatabase(lite, "?")
        finally:
            lite.close()
        return
    conninfo, schema = _postgres(url)
    with psycopg.connect(conninfo) as pg:
        pg.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        yield BotDatabase(pg, "%s")


def create_tables(url: str) -> None:
    """Make the bot's tables (and, on PostgreSQL, their schema) if they are missing."""
    if not url.startswith("sqlite:///"):
        conninfo, schema = _postgres(url)
        with psycopg.connect(conninfo, autocommit=True) as pg:
            pg.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    with open_database(url) as db:
        for statement in TABLES:
            db.run(statement)


def _postgres(url: str) -> tuple[str, str]:
    """The connection string without `schema=`, and that schema ("public" by default)."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise ValueError(f"the bot's tables need sqlite:///path or postgresql://..., got {url!r}")
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    schema = dict(query).get("schema", "public")
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema
