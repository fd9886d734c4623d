"""Inserting jobs on PostgreSQL: COPY for big batches without unique keys, INSERT rounds for the
rest, on a pooled connection or on the caller's own (sync or async) inside its transaction."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import postgres, pq
from psycopg.adapt import Dumper
from psycopg.pq import Format
from psycopg.rows import tuple_row

from ...errors import ConfigurationError, JobExists, StoreError
from ...model import Job
from ..buckets import take_tokens, take_tokens_async
from ..messages import NewJob, QuotaDemand
from ..sql import Row

# Batches at least this big, without unique keys, are inserted with COPY.
COPY_THRESHOLD = 200
COPY_TYPES = [
    "uuid", "text", "text", "jsonb", "text", "int4", "text", "bool", "int4", "timestamptz",
    "text", "text", "text", "text", "timestamptz", "timestamptz", "timestamptz",
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


def records(cur: psycopg.Cursor[Any]) -> list[dict[str, Any]]:
    """The rows of a tuple cursor as dicts by column name."""
    names = [d.name for d in cur.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def one(cur: psycopg.Cursor[Any]) -> Any:
    """The one row a statement always returns."""
    row = cur.fetchone()
    if row is None:
        raise StoreError("PostgreSQL returned no row where one was expected")
    return row


@dataclass(frozen=True, slots=True)
class Inserter:
    """The insert statements of one schema, rendered, and the channel their NOTIFY wakes."""

    insert_jobs: str
    unfinished_by_key: str
    existing_ids: str
    copy_jobs: str
    now: str
    notify: str
    channel: str
    to_job: Callable[[Row], Job]
    take_tokens: str
    bucket_tokens: str

    def copy_in(self, conn: psycopg.Connection[Any], jobs: Sequence[NewJob]) -> list[Job]:
        """Bulk insert with COPY: several times faster than INSERT for big batches. Jobs
        without unique keys only, since COPY cannot skip conflicting rows."""
        now: datetime = one(conn.execute(self.now))[0]
        with conn.cursor() as cur:
            cur.adapters.register_dumper(_EncodedJson, _EncodedJsonbDumper)
            with cur.copy(self.copy_jobs) as copy:
                copy.set_types(COPY_TYPES)
                for j in jobs:
                    run_at = _run_at(j, now)
                    copy.write_row((
                        j.id, j.task, j.title, j.args_json, j.queue, j.priority, "pending",
                        run_at <= now, j.max_attempts, run_at, j.status_message, j.tenant,
                        j.callback_url, j.schedule, j.slot, now, now,
                    ))  # fmt: skip
            cur.execute(self.notify, {"channel": self.channel})
        return _created_jobs(jobs, now, {})

    def take(self, conn: psycopg.Connection[Any], quotas: Sequence[QuotaDemand]) -> None:
        """Take the tokens of `quotas` on `conn`, in its transaction (QuotaExceeded if short)."""

        # A tuple cursor: the caller's connection may hand out rows of another shape.
        with conn.cursor(row_factory=tuple_row) as cur:

            def fetch_one(text: str, params: Any) -> Any:
                return cur.execute(text, params).fetchone()

            take_tokens(fetch_one, self.take_tokens, self.bucket_tokens, quotas, {})

    def insert(
        self, connection: Any, jobs: Sequence[NewJob], quotas: Sequence[QuotaDemand] = ()
    ) -> list[Job]:
        """Insert on a psycopg connection or cursor, inside its transaction if it has one.
        With `quotas`, their tokens are taken first, in one transaction with the insert (a
        savepoint within the caller's): a refusal leaves nothing of the call behind."""
        conn = connection.connection if isinstance(connection, psycopg.Cursor) else connection
        if not isinstance(conn, psycopg.Connection):
            raise ConfigurationError(
                f"enqueue(connection=...) takes a psycopg Connection or Cursor, not "
                f"{type(connection).__name__}; in async code use enqueue_async"
            )
        if not quotas:
            return self._insert(conn, jobs)
        if _implicit_transaction_pending(conn):
            conn.execute(self.now)
        with conn.transaction():
            self.take(conn, quotas)
            return self._insert(conn, jobs)

    def _insert(self, conn: psycopg.Connection[Any], jobs: Sequence[NewJob]) -> list[Job]:
        chosen = _chosen_ids(jobs)
        with conn.cursor(row_factory=tuple_row) as cur, _ids_taken_by_a_race(chosen):
            if chosen:
                cur.execute(self.existing_ids, {"ids": chosen})
                _refuse([row[0] for row in cur.fetchall()])
            rounds = _KeyedInsert(jobs)
            while rounds.pending:
                cur.execute(self.insert_jobs, _insert_params(rounds.pending, self.channel))
                now, inserted, _ = cur.fetchone()  # type: ignore[misc]
                missing = rounds.inserted(now, inserted)
                if missing:
                    cur.execute(self.unfinished_by_key, {"keys": missing})
                    rounds.found([self.to_job(r) for r in records(cur)])
            return rounds.result()

    async def insert_async(
        self, connection: Any, jobs: Sequence[NewJob], quotas: Sequence[QuotaDemand] = ()
    ) -> list[Job]:
        """`insert` for psycopg's AsyncConnection or AsyncCursor."""
        conn = connection.connection if isinstance(connection, psycopg.AsyncCursor) else connection
        if not isinstance(conn, psycopg.AsyncConnection):
            raise ConfigurationError(
                f"enqueue_async(connection=...) takes a psycopg AsyncConnection or AsyncCursor, "
                f"not {type(connection).__name__}"
            )
        if not quotas:
            return await self._insert_async(conn, jobs)
        if _implicit_transaction_pending(conn):
            await conn.execute(self.now)
        async with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:

            async def fetch_one(text: str, params: Any) -> Any:
                await cur.execute(text, params)
                return await cur.fetchone()

            await take_tokens_async(fetch_one, self.take_tokens, self.bucket_tokens, quotas, {})
            return await self._insert_async(conn, jobs)

    async def _insert_async(
        self, conn: psycopg.AsyncConnection[Any], jobs: Sequence[NewJob]
    ) -> list[Job]:
        chosen = _chosen_ids(jobs)
        async with conn.cursor(row_factory=tuple_row) as cur:
            with _ids_taken_by_a_race(chosen):
                if chosen:
                    await cur.execute(self.existing_ids, {"ids": chosen})
                    _refuse([row[0] for row in await cur.fetchall()])
                rounds = _KeyedInsert(jobs)
                while rounds.pending:
                    await cur.execute(
                        self.insert_jobs, _insert_params(rounds.pending, self.channel)
                    )
                    now, inserted, _ = await cur.fetchone()  # type: ignore[misc]
                    missing = rounds.inserted(now, inserted)
                    if missing:
                        await cur.execute(self.unfinished_by_key, {"keys": missing})
                        names = [d.name for d in cur.description or ()]
                        rows = await cur.fetchall()
                        rounds.found([self.to_job(dict(zip(names, r, strict=True))) for r in rows])
            return rounds.result()


def _implicit_transaction_pending(
    conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any],
) -> bool:
    """A connection that is not autocommit and idle: its next statement begins the caller's
    transaction. psycopg's `transaction()` would instead begin one of its own there and commit
    it at the end of the block, so a statement runs first to begin the caller's, and the
    tokens and jobs go into a savepoint within it, committed only when the caller commits.
    (Elsewhere `transaction()` is already right: a savepoint inside a transaction, a
    transaction of its own on an autocommit connection outside one.)"""
    return not conn.autocommit and conn.info.transaction_status == pq.TransactionStatus.IDLE


def _chosen_ids(jobs: Sequence[NewJob]) -> list[uuid.UUID]:
    return [j.id for j in jobs if j.id_chosen]


def _refuse(taken: Sequence[uuid.UUID]) -> None:
    if taken:
        raise JobExists.naming(taken)


@contextmanager
def _ids_taken_by_a_race(chosen: Sequence[uuid.UUID]) -> Iterator[None]:
    """A chosen id inserted by another transaction after the look-up hits the primary key:
    the same refusal, not the driver's error."""
    try:
        yield
    except psycopg.errors.UniqueViolation as exc:
        if chosen and exc.diag.constraint_name == "underway_jobs_pkey":
            raise JobExists.naming(chosen) from None
        raise


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
        "slot": [j.slot for j in jobs],
    }


def _created_jobs(jobs: Sequence[NewJob], now: datetime, existing: dict[str, Job]) -> list[Job]:
    out = []
    for j in jobs:
        if j.key is not None and j.key in existing and existing[j.key].id != j.id:
            out.append(existing[j.key])
            continue
        out.append(j.pending(_run_at(j, now), now))
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


def _run_at(job: NewJob, now: datetime) -> datetime:
    if job.run_at is not None:
        return job.run_at
    return now + timedelta(seconds=job.delay) if job.delay else now
