"""PostgreSQL store (psycopg 3 and its pool). Claims use FOR UPDATE SKIP LOCKED, batches go
through unnest() arrays in one statement, and LISTEN/NOTIFY wakes idle workers."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import postgres, sql
from psycopg.adapt import Dumper
from psycopg.pq import Format
from psycopg.rows import tuple_row
from psycopg_pool import ConnectionPool

from ...errors import ConfigurationError, DuplicateKey, InvalidTransition, JobNotFound, StoreError
from ...model import Job, JobError, Page, QueueInfo, RunStats, Stats, Status, View
from ...settings import Settings
from .. import (
    build_queues,
    build_run_stats,
    build_stats,
    prune_in_batches,
)
from ..messages import (
    Claimed,
    HeartbeatResult,
    JobFilter,
    Lease,
    NewJob,
    Outcome,
    Report,
    ScheduleState,
)
from ..sqlfile import load_migrations, load_queries

log = logging.getLogger("underway.postgres")
PACKAGE = __name__.rsplit(".", 1)[0]
QUERIES = load_queries(PACKAGE)
MIGRATIONS = load_migrations(PACKAGE)

# Connections unused for longer than this are checked before use, so a server restart shows up
# as a reconnect instead of an error in the first query after it.
CHECK_IDLE_SECONDS = 2.0
# Batches at least this big, without unique keys, are inserted with COPY.
COPY_THRESHOLD = 200
UNPAUSED = "AND queue NOT IN (SELECT name FROM {schema}.underway_queues WHERE paused)"
# The main claim skips paused queues and those with a concurrency limit (claimed apart).
UNLIMITED = (
    "AND queue NOT IN (SELECT name FROM {schema}.underway_queues "
    "WHERE paused OR concurrency IS NOT NULL)"
)
COPY_TYPES = [
    "uuid", "text", "text", "jsonb", "text", "int4", "text", "bool", "int4", "timestamptz",
    "text", "text", "text", "text", "timestamptz", "timestamptz",
]  # fmt: skip


class _EncodedJson(str):
    """Marks a str that already holds JSON text."""


class _EncodedJsonbDumper(Dumper):
    """Sends already-encoded JSON as binary jsonb (a version byte, then the text), so COPY does
    not encode the arguments a second time."""

    format = Format.BINARY
    oid = postgres.types["jsonb"].oid

    def dump(self, obj: Any) -> bytes:
        data: bytes = b"\x01" + str(obj).encode()
        return data


class PostgresStore:
    """A `Store` on PostgreSQL. Thread-safe: every call borrows a pooled connection."""

    #: writes on several connections proceed in parallel (row locks, not a file lock)
    concurrent_writes = True

    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self.settings = settings
        self.conninfo, schema = _split_url(url)
        self.schema = schema or settings.schema
        self.channel = _channel(self.schema)
        quoted = sql.Identifier(self.schema).as_string()
        self.q = {name: text.replace("{schema}", quoted) for name, text in QUERIES.items()}
        self.unlimited = UNLIMITED.replace("{schema}", quoted)
        self.unpaused = UNPAUSED.replace("{schema}", quoted)
        self._migrations = [
            (version, name, text.replace("{schema}", quoted)) for version, name, text in MIGRATIONS
        ]
        self._last_used: dict[int, float] = {}
        try:
            self.pool = ConnectionPool(
                self.conninfo,
                min_size=1,
                max_size=settings.pool_size,
                open=False,
                check=self._check,
                kwargs={"prepare_threshold": 2, "autocommit": True},
                name="underway",
            )
            self.pool.open(wait=True, timeout=settings.connect_timeout_seconds)
        except Exception as exc:
            raise StoreError(f"cannot connect to PostgreSQL at {_redact(url)}: {exc}") from None
        self._limited: list[str] = []
        self._limited_read_at = float("-inf")
        self.q = {
            name: text.replace("{unlimited}", "") if name != "claim" else text
            for name, text in self.q.items()
        }
        self._listener: psycopg.Connection[Any] | None = None
        self._listener_lock = threading.Lock()
        self._closed = False

    # --- connections --------------------------------------------------------------------------

    def _check(self, conn: psycopg.Connection[Any]) -> None:
        if time.monotonic() - self._last_used.get(id(conn), 0.0) > CHECK_IDLE_SECONDS:
            conn.execute("")

    @contextmanager
    def _tx(self, atomic: bool = False) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection. Pooled connections autocommit, so a single statement costs one
        round trip; `atomic=True` wraps several statements in one transaction."""
        try:
            with self.pool.connection() as conn:
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
        except psycopg.OperationalError as exc:
            raise StoreError(f"PostgreSQL is unreachable or went away: {exc}") from exc
        except psycopg.errors.UndefinedTable as exc:
            raise StoreError(
                f"the underway tables are missing in schema {self.schema!r}; run `underway "
                "migrate APP`"
            ) from exc

    def _rows(self, name: str, params: dict[str, Any] | None = None, **fmt: str) -> list[Any]:
        with self._tx() as conn:
            return conn.execute(self._sql(name, **fmt), params).fetchall()

    def _sql(self, name: str, **fmt: str) -> Any:
        text = self.q[name]
        for key, value in fmt.items():
            text = text.replace("{" + key + "}", value)
        return text

    def close_thread(self) -> None:
        """Nothing to do: connections belong to the pool, not to threads."""

    def close(self) -> None:
        self._closed = True
        with self._listener_lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
        self.pool.close()

    # --- schema -------------------------------------------------------------------------------

    def migrate(self) -> int:
        latest = self._migrations[-1][0]
        schema = sql.Identifier(self.schema)
        with self._tx(atomic=True) as conn:
            # Several processes may migrate at once: serialize them on an advisory lock.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.channel,))
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {}.underway_migrations ("
                    "version integer PRIMARY KEY, name text NOT NULL, "
                    "applied_at timestamptz NOT NULL DEFAULT now())"
                ).format(schema)
            )
            current = _one(conn.execute(self.q["schema_version"]))[0] or 0
            if current > latest:
                raise StoreError(
                    f"schema {self.schema!r} has version {current}, newer than this underway "
                    f"knows ({latest}); upgrade underway"
                )
            for version, name, text in self._migrations:
                if version > current:
                    conn.execute(text)  # several statements, no parameters
                    conn.execute(
                        sql.SQL(
                            "INSERT INTO {}.underway_migrations (version, name) VALUES (%s, %s)"
                        ).format(schema),
                        (version, name),
                    )
        return latest

    # --- clock --------------------------------------------------------------------------------

    def now(self) -> datetime:
        with self._tx() as conn:
            value: datetime = _one(conn.execute("SELECT now()"))[0]
        return value

    # --- producers ----------------------------------------------------------------------------

    def enqueue(self, jobs: Sequence[NewJob]) -> list[Job]:
        if len(jobs) >= COPY_THRESHOLD and all(j.key is None for j in jobs):
            with self._tx(atomic=True) as conn:
                return self._copy_in(conn, jobs)
        with self._tx() as conn:
            return self.enqueue_on(conn, jobs)

    def _copy_in(self, conn: psycopg.Connection[Any], jobs: Sequence[NewJob]) -> list[Job]:
        """Bulk insert with COPY: several times faster than INSERT for big batches. Jobs
        without unique keys only, since COPY cannot skip conflicting rows."""
        now: datetime = _one(conn.execute("SELECT now()"))[0]
        table = sql.Identifier(self.schema).as_string() + ".underway_jobs"
        columns = (
            "id, task, title, args, queue, priority, status, ready, max_attempts, run_at, "
            "status_message, tenant, callback_url, schedule, created_at, updated_at"
        )
        with conn.cursor() as cur:
            cur.adapters.register_dumper(_EncodedJson, _EncodedJsonbDumper)
            with cur.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(COPY_TYPES)
                for j in jobs:
                    run_at = _run_at(j, now)
                    copy.write_row((
                        j.id, j.task, j.title, j.args_json, j.queue, j.priority, "pending",
                        run_at <= now, j.max_attempts, run_at, j.status_message, j.tenant,
                        j.callback_url, j.schedule, now, now,
                    ))  # fmt: skip
            cur.execute("SELECT pg_notify(%s, '')", (self.channel,))
        return _created_jobs(jobs, now, {})

    def enqueue_on(self, connection: Any, jobs: Sequence[NewJob]) -> list[Job]:
        """Insert on the caller's psycopg connection or cursor, inside its transaction: the
        jobs exist only if that transaction commits, and workers are woken at commit."""
        conn = connection.connection if isinstance(connection, psycopg.Cursor) else connection
        if not isinstance(conn, psycopg.Connection):
            raise ConfigurationError(
                f"enqueue(connection=...) takes a psycopg Connection or Cursor, not "
                f"{type(connection).__name__}; in async code use enqueue_async"
            )
        with conn.cursor(row_factory=tuple_row) as cur:
            rounds = _KeyedInsert(jobs)
            while rounds.pending:
                cur.execute(self.q["insert_jobs"], self._insert_params(rounds.pending))
                now, inserted, _ = cur.fetchone()  # type: ignore[misc]
                missing = rounds.inserted(now, inserted)
                if missing:
                    cur.execute(self.q["get_unfinished_by_keys"], {"keys": missing})
                    rounds.found(self._jobs(cur))
            return rounds.result()

    async def enqueue_on_async(self, connection: Any, jobs: Sequence[NewJob]) -> list[Job]:
        """`enqueue_on` for psycopg's AsyncConnection or AsyncCursor."""
        conn = connection.connection if isinstance(connection, psycopg.AsyncCursor) else connection
        if not isinstance(conn, psycopg.AsyncConnection):
            raise ConfigurationError(
                f"enqueue_async(connection=...) takes a psycopg AsyncConnection or AsyncCursor, "
                f"not {type(connection).__name__}"
            )
        async with conn.cursor(row_factory=tuple_row) as cur:
            rounds = _KeyedInsert(jobs)
            while rounds.pending:
                await cur.execute(self.q["insert_jobs"], self._insert_params(rounds.pending))
                now, inserted, _ = await cur.fetchone()  # type: ignore[misc]
                missing = rounds.inserted(now, inserted)
                if missing:
                    await cur.execute(self.q["get_unfinished_by_keys"], {"keys": missing})
                    names = [d.name for d in cur.description or ()]
                    rows = await cur.fetchall()
                    rounds.found([_row_to_job(dict(zip(names, r, strict=True))) for r in rows])
            return rounds.result()

    def _insert_params(self, jobs: Sequence[NewJob]) -> dict[str, Any]:
        return _insert_params(jobs, self.channel)

    # --- workers ------------------------------------------------------------------------------

    def claim(self, worker_id: str, queues: Sequence[str] | None, limit: int) -> list[Claimed]:
        if limit <= 0:
            return []
        claimed: list[Claimed] = []
        base = {"lease": self.settings.lease_seconds, "worker_id": worker_id}
        # Limited queues first: they are capped, and would starve behind busy free ones.
        for name in self._limited_queues():
            if (queues and name not in queues) or len(claimed) >= limit:
                continue
            with self._tx(atomic=True) as conn:
                row = conn.execute(self.q["lock_limited_queue"], {"queue": name}).fetchone()
                if row is None:
                    continue  # paused, or no longer limited
                running = _one(conn.execute(self.q["count_running"], {"queue": name}))[0]
                room = min(limit - len(claimed), row[0] - running)
                if room > 0:
                    params = {**base, "queue": name, "limit": room}
                    text = self._sql("claim", queues="AND queue = %(queue)s", unlimited="")
                    claimed += self._claimed(conn.execute(text, params))
        if len(claimed) < limit:
            queue_sql, params = _queue_filter(queues)
            params.update(base, limit=limit - len(claimed))
            text = self._sql("claim", queues=queue_sql, unlimited=self.unlimited)
            with self._tx() as conn:
                claimed += self._claimed(conn.execute(text, params))
        claimed.sort(key=lambda c: (-c.job.priority, c.job.run_at, c.job.id))
        return claimed

    def _limited_queues(self) -> list[str]:
        """Names of limited queues, re-read at most every second. Staleness is safe: the main
        claim excludes limited queues by reading the table itself."""
        now = time.monotonic()
        if now - self._limited_read_at > 1.0:
            self._limited = [row[0] for row in self._rows("limited_queues")]
            self._limited_read_at = now
        return self._limited

    @staticmethod
    def _claimed(cur: psycopg.Cursor[Any]) -> list[Claimed]:
        return [Claimed(_row_to_job(r), r["lease_token"]) for r in _records(cur)]

    def heartbeat(self, worker_id: str, leases: Sequence[Lease]) -> HeartbeatResult:
        if not leases:
            return HeartbeatResult(frozenset(), frozenset())
        params = {
            "ids": [lease.job_id for lease in leases],
            "tokens": [lease.token for lease in leases],
            "lease": self.settings.lease_seconds,
        }
        rows = self._rows("heartbeat", params)
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
            conn.execute(self.q["report"], params)

    def finish(self, outcomes: Sequence[Outcome]) -> set[uuid.UUID]:
        if not outcomes:
            return set()
        params: dict[str, list[Any]] = {
            "ids": [],
            "tokens": [],
            "statuses": [],
            "results": [],
            "has_error": [],
            "error_message": [],
            "error_type": [],
            "error_traceback": [],
            "refund": [],
            "retry_in": [],
            "report": [],
            "progress": [],
            "status_message": [],
            "payload": [],
        }
        for o in outcomes:
            error = o.error
            params["ids"].append(o.job_id)
            params["tokens"].append(o.token)
            params["statuses"].append(o.status.value)
            params["results"].append(o.result_json)
            params["has_error"].append(error is not None or o.status is Status.COMPLETED)
            params["error_message"].append(error.message if error else None)
            params["error_type"].append(error.type if error else None)
            params["error_traceback"].append(error.traceback if error else None)
            params["refund"].append(0 if o.spend_attempt else 1)
            params["retry_in"].append(o.retry_in or 0.0)
            params["report"].append(o.report_dirty)
            params["progress"].append(o.progress)
            params["status_message"].append(o.status_message)
            params["payload"].append(o.payload_json)
        return {row[0] for row in self._rows("finish", params)}

    def rescue(self, max_rescues: int) -> list[Job]:
        with self._tx() as conn:
            cur = conn.execute(self.q["rescue"], {"max_rescues": max_rescues})
            return self._jobs(cur)

    def next_due(self, queues: Sequence[str] | None) -> float | None:
        queue_sql, params = _queue_filter(queues)
        rows = self._rows("next_due", params, queues=queue_sql, unpaused=self.unpaused)
        value = rows[0][0]
        return None if value is None else float(value)

    def wait_for_change(self, timeout: float) -> bool:
        """Block until a NOTIFY about new work arrives (True) or `timeout` passes (False)."""
        try:
            listener = self._listen()
            got = False
            for _ in listener.notifies(timeout=timeout, stop_after=1):
                got = True
            if got:  # swallow the others that arrived together
                for _ in listener.notifies(timeout=0):
                    pass
            return got
        except psycopg.Error as exc:
            if self._closed:
                return False  # the store closed under a waiting thread: nothing to report
            log.warning("listening for new jobs failed (%s); reconnecting", exc)
            with self._listener_lock:
                if self._listener is not None:
                    self._listener.close()
                self._listener = None
            time.sleep(min(timeout, 1.0))
            return True  # notifications may have been missed: look for work

    def _listen(self) -> psycopg.Connection[Any]:
        with self._listener_lock:
            if self._listener is None or self._listener.closed:
                conn = psycopg.connect(self.conninfo, autocommit=True)
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                self._listener = conn
            return self._listener

    # --- inspection and control ---------------------------------------------------------------

    def get(self, job_id: uuid.UUID) -> Job | None:
        with self._tx() as conn:
            jobs = self._jobs(conn.execute(self.q["get"], {"id": job_id}))
        return jobs[0] if jobs else None

    def list_jobs(self, where: JobFilter, limit: int, cursor: str | None) -> Page:
        clauses, params = _filter_sql(where)
        if cursor:
            clauses.append("id < %(cursor)s")
            params["cursor"] = uuid.UUID(cursor)
        text = f"SELECT * FROM {sql.Identifier(self.schema).as_string()}.underway_jobs"
        if clauses:
            text += " WHERE " + " AND ".join(clauses)
        text += " ORDER BY id DESC LIMIT %(limit)s"
        params["limit"] = limit + 1
        with self._tx() as conn:
            rows = self._jobs(conn.execute(text, params))
        jobs = rows[:limit]
        return Page(jobs, str(jobs[-1].id) if len(rows) > limit and jobs else None)

    def cancel(self, job_id: uuid.UUID) -> Job:
        with self._tx() as conn:
            for name in ("cancel_pending", "request_cancel"):
                jobs = self._jobs(conn.execute(self.q[name], {"id": job_id}))
                if jobs:
                    return jobs[0]
        job = self._require(job_id)
        if job.status is Status.CANCELLED:
            return job
        raise InvalidTransition(f"job {job_id} is already {job.status}; it cannot be cancelled")

    def retry(self, job_id: uuid.UUID) -> Job:
        try:
            with self._tx() as conn:
                jobs = self._jobs(
                    conn.execute(self.q["retry"], {"id": job_id, "channel": self.channel})
                )
        except psycopg.errors.UniqueViolation:
            job = self._require(job_id)
            raise DuplicateKey(
                f"job {job_id} cannot be retried: another unfinished job holds its key {job.key!r}"
            ) from None
        if jobs:
            return jobs[0]
        job = self._require(job_id)
        raise InvalidTransition(
            f"job {job_id} is {job.status}; only failed or cancelled jobs can be retried"
        )

    def stats(self) -> Stats:
        with self._tx() as conn:
            rows = conn.execute(self.q["stats"]).fetchall()
            scheduled, retrying = _one(conn.execute(self.q["stats_pending_views"]))
        return build_stats(rows, scheduled, retrying)

    # --- queues and retention -----------------------------------------------------------------

    def set_queue_paused(self, name: str, paused: bool) -> None:
        with self._tx() as conn:
            conn.execute(self.q["set_queue_paused"], {"name": name, "paused": paused})
        self._limited_read_at = float("-inf")  # a resumed limited queue counts at once

    def set_queue_concurrency(self, name: str, concurrency: int | None) -> None:
        with self._tx() as conn:
            conn.execute(
                self.q["set_queue_concurrency"], {"name": name, "concurrency": concurrency}
            )
        self._limited_read_at = float("-inf")

    def queues(self) -> list[QueueInfo]:
        return build_queues(self._rows("queues"), self.stats().by_queue)

    def prune(self, older_than: float, statuses: Sequence[Status], batch: int = 1000) -> int:
        params = {"statuses": [Status(st).value for st in statuses], "age": older_than,
                  "batch": batch}  # fmt: skip

        def delete_batch() -> int:
            # SKIP LOCKED keeps two pruners apart and never waits on a row a worker holds.
            with self._tx() as conn:
                return int(conn.execute(self.q["prune"], params).rowcount)

        return prune_in_batches(delete_batch, batch)

    # --- schedules ----------------------------------------------------------------------------

    def register_schedule(self, name: str, task: str, rule: str, anchor: datetime) -> ScheduleState:
        params = {"name": name, "task": task, "rule": rule, "anchor": anchor}
        with self._tx() as conn:
            return _schedule_state(_records(conn.execute(self.q["register_schedule"], params))[0])

    def schedule_states(self) -> list[ScheduleState]:
        with self._tx() as conn:
            return [_schedule_state(r) for r in _records(conn.execute(self.q["schedule_states"]))]

    def fire_schedule(
        self, name: str, slot: datetime, job: NewJob | None, overlap: str
    ) -> Job | None:
        with self._tx(atomic=True) as conn:
            # The row lock makes concurrent schedulers take turns on this schedule.
            states = _records(conn.execute(self.q["lock_schedule"], {"name": name}))
            if not states or states[0]["paused"]:
                return None
            last = states[0]["last_slot"]
            if last is not None and last >= slot:
                return None  # another scheduler handled this slot already
            busy = (
                job is not None
                and overlap != "allow"
                and conn.execute(self.q["schedule_busy"], {"name": name}).fetchone() is not None
            )
            if busy and overlap == "wait":
                return None  # try again once the unfinished one is done
            if busy:
                job = None  # "skip": this slot is dropped
            params = {"name": name, "slot": slot, "fired": int(job is not None)}
            conn.execute(self.q["advance_schedule"], params)
            return None if job is None else self.enqueue_on(conn, [job])[0]

    def trigger_schedule(self, name: str, job: NewJob) -> Job:
        with self._tx(atomic=True) as conn:
            if conn.execute(self.q["count_schedule_run"], {"name": name}).rowcount == 0:
                raise JobNotFound(f"no schedule named {name!r}")
            return self.enqueue_on(conn, [job])[0]

    def set_schedule_paused(self, name: str, paused: bool) -> None:
        with self._tx() as conn:
            params = {"name": name, "paused": paused}
            if conn.execute(self.q["set_schedule_paused"], params).rowcount == 0:
                raise JobNotFound(f"no schedule named {name!r}")

    def run_stats(self) -> tuple[dict[str, RunStats], dict[str, RunStats]]:
        out = []
        with self._tx() as conn:
            for group in ("task", "schedule"):
                parts = [
                    conn.execute(self.q[name].replace("{group}", group)).fetchall()
                    for name in ("run_aggregates", "run_recent", "run_running")
                ]
                out.append(build_run_stats(*parts))
        return out[0], out[1]

    # --- rows ---------------------------------------------------------------------------------

    def _require(self, job_id: uuid.UUID) -> Job:
        job = self.get(job_id)
        if job is None:
            raise JobNotFound(f"no job with id {job_id}")
        return job

    @staticmethod
    def _jobs(cur: psycopg.Cursor[Any]) -> list[Job]:
        return [_row_to_job(record) for record in _records(cur)]


def _records(cur: psycopg.Cursor[Any]) -> list[dict[str, Any]]:
    names = [d.name for d in cur.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _one(cur: psycopg.Cursor[Any]) -> Any:
    row = cur.fetchone()
    if row is None:
        raise StoreError("PostgreSQL returned no row where one was expected")
    return row


def _schedule_state(r: dict[str, Any]) -> ScheduleState:
    return ScheduleState(
        name=r["name"], task=r["task"], rule=r["rule"], anchor=r["anchor"],
        last_slot=r["last_slot"], next_run=r["next_run"], paused=r["paused"],
        run_count=r["run_count"],
    )  # fmt: skip


def _row_to_job(r: dict[str, Any]) -> Job:
    error = None
    if r["error_message"] is not None:
        error = JobError(r["error_message"], r["error_type"] or "", r["error_traceback"] or "")
    return Job(
        id=r["id"],
        task=r["task"],
        title=r["title"],
        args=r["args"],
        queue=r["queue"],
        priority=r["priority"],
        status=Status(r["status"]),
        attempt=r["attempt"],
        max_attempts=r["max_attempts"],
        run_at=r["run_at"],
        created_at=r["created_at"],
        progress=r["progress"],
        status_message=r["status_message"],
        payload=r["payload"],
        result=r["result"],
        error=error,
        tenant=r["tenant"],
        callback_url=r["callback_url"],
        key=r["key"],
        started_at=r["started_at"],
        completed_at=r["completed_at"],
        cancel_requested=r["cancel_requested"],
        schedule=r["schedule"],
        rescues=r["rescues"],
    )


def _insert_params(jobs: Sequence[NewJob], channel: str) -> dict[str, Any]:
    return {
        "channel": channel,
        "id": [j.id for j in jobs],
        "task": [j.task for j in jobs],
        "title": [j.title for j in jobs],
        "args": [j.args_json for j in jobs],
        "queue": [j.queue for j in jobs],
        "priority": [j.priority for j in jobs],
        "max_attempts": [j.max_attempts for j in jobs],
        "run_at": [j.run_at for j in jobs],
        "delay": [j.delay for j in jobs],
        "status_message": [j.status_message for j in jobs],
        "tenant": [j.tenant for j in jobs],
        "callback_url": [j.callback_url for j in jobs],
        "key": [j.key for j in jobs],
        "schedule": [j.schedule for j in jobs],
    }


def _created_jobs(jobs: Sequence[NewJob], now: datetime, existing: dict[str, Job]) -> list[Job]:
    out = []
    for j in jobs:
        if j.key is not None and j.key in existing and existing[j.key].id != j.id:
            out.append(existing[j.key])
            continue
        run_at = _run_at(j, now)
        out.append(
            Job(
                id=j.id,
                task=j.task,
                title=j.title,
                args=j.args,
                queue=j.queue,
                priority=j.priority,
                status=Status.PENDING,
                attempt=0,
                max_attempts=j.max_attempts,
                run_at=run_at,
                created_at=now,
                status_message=j.status_message,
                tenant=j.tenant,
                callback_url=j.callback_url,
                key=j.key,
                schedule=j.schedule,
            )
        )
    return out


class _KeyedInsert:
    """Rounds of INSERT ... ON CONFLICT DO NOTHING for jobs with unique keys. A job whose key
    was taken is answered with the unfinished job holding it; if that job finished between
    the insert and the look-up, the key is free again and the job is inserted in a new round,
    so a caller never gets back a job that does not exist."""

    def __init__(self, jobs: Sequence[NewJob]) -> None:
        self.jobs = list(jobs)
        self.pending = list(jobs)
        self.now: datetime | None = None
        self.existing: dict[str, Job] = {}
        self._inserted: set[uuid.UUID] = set()
        self._rounds = 0

    def inserted(self, now: datetime, ids: Sequence[uuid.UUID]) -> list[str]:
        """Record a round; returns the keys to look up."""
        self._rounds += 1
        self.now = self.now or now
        self._inserted.update(ids)
        missing = [j.key for j in self.pending if j.key is not None and j.id not in self._inserted]
        if not missing:
            self.pending = []
        return missing

    def found(self, holders: Sequence[Job]) -> None:
        self.existing.update({job.key: job for job in holders if job.key is not None})
        self.pending = [
            j for j in self.pending
            if j.key is not None and j.id not in self._inserted and j.key not in self.existing
        ]  # fmt: skip
        if self.pending and self._rounds >= 10:
            raise StoreError("a unique key kept changing hands while enqueueing; try again")

    def result(self) -> list[Job]:
        if self.now is None:  # nothing to insert
            return []
        return _created_jobs(self.jobs, self.now, self.existing)


def _channel(schema: str) -> str:
    """The NOTIFY channel of a schema; PostgreSQL caps identifiers at 63 bytes."""
    channel = f"underway:{schema}"
    if len(channel.encode()) <= 63:
        return channel
    return "underway:" + hashlib.sha256(schema.encode()).hexdigest()[:32]


def _run_at(job: NewJob, now: datetime) -> datetime:
    if job.run_at is not None:
        return job.run_at
    return now + timedelta(seconds=job.delay) if job.delay else now


def _queue_filter(queues: Sequence[str] | None) -> tuple[str, dict[str, Any]]:
    if not queues:
        return "", {}
    if len(queues) == 1:  # equality lets the planner walk the per-queue index in order
        return "AND queue = %(queue)s", {"queue": queues[0]}
    return "AND queue = ANY(%(queues)s)", {"queues": list(queues)}


def _filter_sql(where: JobFilter) -> tuple[list[str], dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    for column, value in (
        ("status", where.status),
        ("task", where.task),
        ("queue", where.queue),
        ("tenant", where.tenant),
    ):
        if value is not None:
            clauses.append(f"{column} = %({column})s")
            params[column] = str(value)
    if where.view is View.SCHEDULED:
        clauses.append("status = 'pending' AND run_at > now()")
    elif where.view is View.RETRYING:
        clauses.append("status = 'pending' AND attempt > 0")
    return clauses, params


def _split_url(url: str) -> tuple[str, str | None]:
    """Take our own `schema` parameter off the URL; the rest goes to libpq."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    scheme = "postgresql" if parts.scheme in ("postgres", "postgresql") else parts.scheme
    return urlunsplit((scheme, parts.netloc, parts.path, rest, parts.fragment)), schema


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
