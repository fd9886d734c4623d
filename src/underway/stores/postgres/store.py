"""PostgreSQL store (psycopg 3 and its pool). Claims use FOR UPDATE SKIP LOCKED, batches go
through unnest() arrays in one statement, and LISTEN/NOTIFY wakes idle workers."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from ...errors import StoreError
from ...model import Job
from ...settings import Settings
from ..messages import (
    Claimed,
    HeartbeatResult,
    HorizonHolder,
    Lease,
    Listener,
    NewJob,
    Outcome,
    QuotaDemand,
    Report,
    Topic,
)
from ..metering import MeteringVerbs
from ..schedules import ScheduleRows
from ..sql import Row, Values, job_mapper
from ..sqlfile import load_migrations, load_queries, render, unapplied
from ..ticker import Ticker
from .claiming import Claims
from .errors import describe_error
from .finishing import Completer, Completions, finish_params
from .inserts import COPY_THRESHOLD, Inserter, one, records
from .listener import Listener as PgListener
from .listener import topic_channel
from .network import POOLED, with_defaults
from .pooler import CANCEL_CHECK_SECONDS, FEED_CHECK_SECONDS, NewestChange, pooler

log = logging.getLogger("underway.postgres")
PACKAGE = __name__.rsplit(".", 1)[0]
QUERIES = load_queries(PACKAGE)
MIGRATIONS = load_migrations(PACKAGE)

# Connections unused for longer than this are checked before use, so a server restart shows up
# as a reconnect instead of an error in the first query after it.
CHECK_IDLE_SECONDS = 2.0

#: The driver returns uuid, timestamptz, jsonb and boolean as Python values already; a
#: list_jobs cursor is compared as a uuid.
VALUES = Values(dump_cursor=uuid.UUID)
_job = job_mapper(VALUES)


def _queue_shape(queues: Sequence[str] | None) -> tuple[str, dict[str, Any]]:
    """Which queue filter a claim or next_due takes, and its parameters."""
    if not queues:
        return "all", {}
    if len(queues) == 1:  # equality lets the planner walk the per-queue index in order
        return "one", {"queue": queues[0]}
    return "many", {"queues": list(queues)}


def feed_position(cursor: str) -> dict[str, Any]:
    """A feed cursor, `<xid>-<seq>-<item>` (the item within the row of a statement's changes),
    as the changes statement takes it."""
    xid, seq, item = (int(part) for part in cursor.split("-"))
    if not (0 <= xid < 2**64 and 0 <= seq < 2**63 and 0 <= item < 2**63):  # xid8, bigint
        raise ValueError(cursor)
    return {"xid": str(xid), "seq": seq, "item": item}


class PostgresStore(
    ScheduleRows[psycopg.Connection[Any]], MeteringVerbs[psycopg.Connection[Any]], Completions
):
    """A `Store` on PostgreSQL. Thread-safe: every call borrows a pooled connection."""

    #: writes on several connections proceed in parallel (row locks, not a file lock)
    concurrent_writes = True
    values = VALUES
    duplicate_key_error = psycopg.errors.UniqueViolation

    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self.settings = settings
        self.conninfo, schema = _split_url(url)
        #: behind PgBouncer in transaction mode (`?pooler=transaction`): a session is not
        #: ours from one transaction to the next, so no LISTEN (workers and watchers poll)
        #: and no prepared statements
        self.transaction_pooled = pooler(url) == "transaction"
        self.schema = schema or settings.schema
        self.channel = _channel(self.schema)
        quoted = sql.Identifier(self.schema).as_string()
        super().__init__(QUERIES, {"schema": quoted})
        self._newest = NewestChange(lambda: self._rows(self._q["newest_change"]))
        self._wake = {"channel": self.channel}
        self._render_hot_paths()
        self._migrations = [
            (version, name, render(text, schema=quoted)) for version, name, text in MIGRATIONS
        ]
        self._last_used: dict[int, float] = {}
        _probe(self.conninfo, url, settings.connect_timeout_seconds)
        try:
            self.pool = ConnectionPool(
                with_defaults(self.conninfo, POOLED),
                min_size=1,
                max_size=settings.pool_size,
                open=False,
                check=self._check,
                kwargs={
                    "prepare_threshold": None if self.transaction_pooled else 2,
                    "autocommit": True,
                },
                name="underway",
            )
            self.pool.open(wait=True, timeout=settings.connect_timeout_seconds)
        except Exception as exc:
            raise StoreError(f"cannot connect to PostgreSQL at {_redact(url)}: {exc}") from None
        self._listener: PgListener | None = None  # wait_for_change's
        self._listener_lock = threading.Lock()
        self._waiting = threading.Lock()  # held by the thread reading the listener
        self._hinted = False  # keep_listening read a hint the next wait must return
        self._closed = False

    def _render_hot_paths(self) -> None:
        """Every variant of the statements whose fragments vary, rendered once: claims and
        next_due by queue filter (`_queue_shape`), plus the claim of one limited queue."""
        q = self._q
        filters = {"all": "", "one": q["filter_queue"], "many": q["filter_queues"]}
        self.claims = Claims(self._render, q, self._tx, _queue_shape, _job)
        self.next_due_sql = {
            shape: self._render("next_due", queues=text) for shape, text in filters.items()
        }
        self._listen_sql = render(
            QUERIES["listen"], channel=sql.Identifier(self.channel).as_string()
        )
        self._inserter = Inserter(
            insert_jobs=q["insert_jobs"], unfinished_by_key=q["unfinished_by_key"],
            existing_ids=q["existing_ids"],
            copy_jobs=q["copy_jobs"], now=q["now"], notify=q["notify"], channel=self.channel,
            to_job=_job, take_tokens=q["take_tokens"], bucket_tokens=q["bucket_tokens"],
        )  # fmt: skip
        self._completer = Completer(q["finish"], self.schema)

    # --- connections --------------------------------------------------------------------------

    def _check(self, conn: psycopg.Connection[Any]) -> None:
        if time.monotonic() - self._last_used.get(id(conn), 0.0) > CHECK_IDLE_SECONDS:
            conn.execute("")

    @contextmanager
    def _tx(self, atomic: bool = False) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection. Pooled connections autocommit, so a single statement costs one
        round trip; `atomic=True` wraps several statements in one transaction."""
        try:
            # Not the pool's default 30 s: during an outage a call fails after the same
            # connect_timeout_seconds that opening the store waits.
            with self.pool.connection(timeout=self.settings.connect_timeout_seconds) as conn:
                try:
                    if atomic:
                        with conn.transaction():
                            yield conn
                    else:
                        yield conn
                finally:
                    self._last_used[id(conn)] = time.monotonic()
        except psycopg.errors.UniqueViolation:
            raise
        except psycopg.errors.UndefinedTable as exc:
            raise StoreError(
                f"the underway tables are missing in schema {self.schema!r}; run `underway "
                "migrate APP`"
            ) from exc
        except (psycopg.OperationalError, psycopg.errors.ReadOnlySqlTransaction) as exc:
            _replace_if_read_only(self.pool, exc)
            raise StoreError(describe_error(exc)) from exc

    def _rows(self, text: str, params: dict[str, Any] | None = None) -> list[Any]:
        with self._tx() as conn:
            return conn.execute(text, params).fetchall()

    def close_thread(self) -> None:
        """Nothing to do: connections belong to the pool, not to threads."""

    def close(self) -> None:
        self._closed = True
        with self._listener_lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
        self.pool.close()

    # --- what the shared verbs run on (sql.SqlStore) ------------------------------------------

    def _reading(self) -> AbstractContextManager[psycopg.Connection[Any]]:
        return self._tx()

    def _writing(self, atomic: bool = False) -> AbstractContextManager[psycopg.Connection[Any]]:
        return self._tx(atomic=atomic)

    def _records(self, cursor: psycopg.Cursor[Any]) -> list[Row]:
        return list(records(cursor))

    def _stamp(self) -> dict[str, Any]:
        return {}  # the statements read the server's clock, now()

    def horizon_holders(self, older_than: float) -> list[HorizonHolder]:
        rows = self._rows(self._q["horizon_holders"], {"older_than": older_than})
        return [HorizonHolder(kind, name, seconds, detail) for kind, name, seconds, detail in rows]

    def _clock_skew(self, conn: psycopg.Connection[Any]) -> float | None:
        # The server read its clock between our two readings: their midpoint is off from it
        # by at most half the round trip.
        sent = time.time()
        server = conn.execute(self._q["server_clock"]).fetchone()
        back = time.time()
        return None if server is None else (sent + back) / 2 - float(server[0])

    def _insert_within(
        self, conn: psycopg.Connection[Any], job: NewJob, stamp: dict[str, Any]
    ) -> Job:
        return self._inserter.insert(conn, [job])[0]

    def _queues_changed(self) -> None:
        self.claims.forget_limited()

    # --- schema -------------------------------------------------------------------------------

    def migrate(self) -> int:
        latest = self._migrations[-1][0]
        q = self._q
        with self._tx(atomic=True) as conn:
            conn.execute(q["lock_migrations"], {"channel": self.channel})
            conn.execute(q["create_schema"])
            conn.execute(q["create_migrations_table"])
            applied = [row[0] for row in conn.execute(q["applied_migrations"])]
            where = f"schema {self.schema!r}"
            for version, name, text in unapplied(self._migrations, applied, where):
                conn.execute(text)  # several statements, no parameters
                conn.execute(q["record_migration"], {"version": version, "name": name})
        return latest

    # --- clock --------------------------------------------------------------------------------

    def now(self) -> datetime:
        with self._tx() as conn:
            value: datetime = one(conn.execute(self._q["now"]))[0]
        return value

    # --- producers ----------------------------------------------------------------------------

    def enqueue(self, jobs: Sequence[NewJob], quotas: Sequence[QuotaDemand] = ()) -> list[Job]:
        if len(jobs) >= COPY_THRESHOLD and all(j.key is None and not j.id_chosen for j in jobs):
            with self._tx(atomic=True) as conn:
                if quotas:
                    self._inserter.take(conn, quotas)
                return self._inserter.copy_in(conn, jobs)
        # Autocommit, unless quotas apply: then the insert opens one transaction for the
        # tokens and the jobs together.
        with self._tx() as conn:
            return self._inserter.insert(conn, jobs, quotas)

    def enqueue_on(
        self, connection: Any, jobs: Sequence[NewJob], quotas: Sequence[QuotaDemand] = ()
    ) -> list[Job]:
        """Insert on the caller's psycopg connection or cursor, inside its transaction: the
        jobs exist only if that transaction commits, and workers are woken at commit. The
        quotas' tokens are taken on that connection too, in the same transaction."""
        return self._inserter.insert(connection, jobs, quotas)

    async def enqueue_on_async(
        self, connection: Any, jobs: Sequence[NewJob], quotas: Sequence[QuotaDemand] = ()
    ) -> list[Job]:
        """`enqueue_on` for psycopg's AsyncConnection or AsyncCursor."""
        return await self._inserter.insert_async(connection, jobs, quotas)

    # --- workers ------------------------------------------------------------------------------

    def claim(
        self, worker_id: str, queues: Sequence[str] | None, limit: int, suspects: bool = False
    ) -> list[Claimed]:
        return self.claims.claim(worker_id, queues, limit, self.settings.lease_seconds, suspects)

    def suspect_due(self, queues: Sequence[str] | None) -> bool:
        return self.claims.suspect_due(queues)

    def heartbeat(self, worker_id: str, leases: Sequence[Lease]) -> HeartbeatResult:
        if not leases:
            return HeartbeatResult(frozenset(), frozenset())
        params = {
            "ids": [lease.job_id for lease in leases],
            "tokens": [lease.token for lease in leases],
            "lease": self.settings.lease_seconds,
        }
        rows = self._rows(self._q["heartbeat"], params)
        held = {row[0]: row[1] for row in rows}
        cancelled = frozenset(job_id for job_id, flag in held.items() if flag)
        lost = frozenset(lease.job_id for lease in leases if lease.job_id not in held)
        return HeartbeatResult(cancelled, lost)

    def report(self, reports: Sequence[Report]) -> None:
        if not reports:
            return
        params = {
            "ids": [r.job_id for r in reports],
            "tokens": [r.token for r in reports],
            "progress": [r.progress for r in reports],
            "status_message": [r.status_message for r in reports],
            "payload": [r.payload_json for r in reports],
        }
        with self._tx() as conn:
            conn.execute(self._q["report"], params)

    def finish(self, outcomes: Sequence[Outcome]) -> set[uuid.UUID]:
        if not outcomes:
            return set()
        return {row[0] for row in self._rows(self._q["finish"], finish_params(outcomes))}

    def rescue(self, max_rescues: int) -> list[Job]:
        with self._tx() as conn:
            cur = conn.execute(self._q["rescue"], {"max_rescues": max_rescues})
            return [_job(r) for r in records(cur)]

    def next_due(self, queues: Sequence[str] | None) -> float | None:
        shape, params = _queue_shape(queues)
        value = self._rows(self.next_due_sql[shape], params)[0][0]
        return None if value is None else float(value)

    def _feed_position(self, cursor: str) -> dict[str, Any]:
        return feed_position(cursor)

    def listen(self, topic: Topic) -> Listener:
        if self.transaction_pooled:
            return Ticker(CANCEL_CHECK_SECONDS if topic == "cancels" else FEED_CHECK_SECONDS)
        channel = topic_channel(topic, self.schema)
        listen = render(QUERIES["listen"], channel=sql.Identifier(channel).as_string())
        return PgListener(self.conninfo, channel, listen, self._ping)

    def wait_for_change(self, timeout: float) -> bool:
        """True on a NOTIFY about new work (or notices may have been lost), False on timeout."""
        if self.transaction_pooled:
            return self._newest.moved(timeout)
        with self._listener_lock:
            if self._closed:
                return False
            if self._listener is None:
                self._listener = PgListener(self.conninfo, self.channel, self._listen_sql,
                                            self._ping)  # fmt: skip
            listener = self._listener
        with self._waiting:
            if self._hinted:
                self._hinted = False
                return True
            return listener.wait(timeout) != []

    def keep_listening(self) -> None:
        # A restart leaves the connection dead until read: a busy worker reads it only here.
        with self._listener_lock:
            listener = None if self._closed else self._listener
        if listener is None or self.transaction_pooled or not self._waiting.acquire(False):
            return
        try:
            if listener.wait(0.0) != []:
                self._hinted = True
        finally:
            self._waiting.release()

    def _ping(self, channel: str, payload: str) -> None:
        # A listener's health-check notice, on a pooled connection (one of its own per ping
        # would cost a connect every few seconds), sent from the listener's own thread.
        with self._tx() as conn:
            conn.execute(self._q["ping"], {"channel": channel, "payload": payload})


def _replace_if_read_only(pool: ConnectionPool, exc: psycopg.Error) -> None:
    """A read-only server is a lost connection. A session stays read-only for life (opened on
    a standby, or under default_transaction_read_only = on), so back in the pool it would fail
    the same way forever; and every pooled session was opened the same way. So all of them are
    replaced (one in use as it comes back), and the new ones reach a writable primary as soon
    as there is one again (ConnectionPool.drain: psycopg_pool 3.3, hence the pin)."""
    if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
        pool.drain()


def _channel(schema: str) -> str:
    """The NOTIFY channel of a schema; PostgreSQL caps identifiers at 63 bytes."""
    channel = f"underway:{schema}"
    if len(channel.encode()) <= 63:
        return channel
    return "underway:" + hashlib.sha256(schema.encode()).hexdigest()[:32]


def _probe(conninfo: str, url: str, timeout: float) -> None:
    """One connection before the pool's: the pool retries a refused connection until its
    timeout and then says only that it is incomplete, while the server said why (no such
    database, a bad password, no slot left, a host that does not resolve)."""
    try:
        psycopg.connect(conninfo, connect_timeout=max(1, round(timeout))).close()
    except psycopg.Error as exc:
        raise StoreError(
            f"cannot connect to PostgreSQL at {_redact(url)}: {describe_error(exc)}"
        ) from None


#: the URL's parameters that are ours, not libpq's
OWN_PARAMETERS = ("schema", "pooler")


def _split_url(url: str) -> tuple[str, str | None]:
    """Take our own parameters (`schema`, `pooler`) off the URL; the rest goes to libpq."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    # quote, not urlencode's quote_plus: libpq reads "+" as a plus, not a space
    rest = urlencode([(k, v) for k, v in query if k not in OWN_PARAMETERS], quote_via=quote)
    scheme = "postgresql" if parts.scheme in ("postgres", "postgresql") else parts.scheme
    return urlunsplit((scheme, parts.netloc, parts.path, rest, parts.fragment)), schema


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
