"""SQLite store. Writes take the database's single write lock (BEGIN IMMEDIATE), which makes
claiming atomic across processes; WAL lets readers go on meanwhile."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ...errors import DuplicateKey, InvalidTransition, JobNotFound, StoreError
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

Q = load_queries(__name__.rsplit(".", 1)[0])
MIGRATIONS = load_migrations(__name__.rsplit(".", 1)[0])
MIN_SQLITE = (3, 35, 0)  # UPDATE ... RETURNING


def _ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _queue_filter(queues: Sequence[str] | None) -> tuple[str, dict[str, Any]]:
    if not queues:
        return "", {}
    return "AND queue IN (SELECT value FROM json_each(:queues))", {"queues": json.dumps(queues)}


class SqliteStore:
    """A `Store` on one SQLite file. Each thread gets its own connection."""

    #: one writer at a time anyway: a second connection of ours would only queue on the lock
    concurrent_writes = False

    def __init__(self, url: str, settings: Settings) -> None:
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise StoreError(
                f"SQLite {sqlite3.sqlite_version} is too old; underway needs 3.35 or newer "
                "(upgrade Python or the system SQLite)"
            )
        self.url = url
        self.path = _path_from_url(url)
        self.settings = settings
        # One connection per thread, held only by the thread's local storage: closing one that
        # another thread is using can crash the interpreter, so each is closed by its own
        # thread (close_thread), or freed with the local storage once no thread uses it.
        self._local = threading.local()

    # --- connections --------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            self._local.data_version = None
        return conn

    def _connect(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=60.0
            )
            conn.row_factory = sqlite3.Row  # name lookups done in C, no dict per row
            conn.execute("PRAGMA busy_timeout = 60000")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"{self.path} is not a usable SQLite database ({exc}). Point the URL at an "
                "underway database or at a new file; underway will create it."
            ) from None
        if mode.lower() != "wal" and self.path != ":memory:":
            raise StoreError(f"could not switch {self.path} to WAL mode (got {mode!r})")
        return conn

    def close_thread(self) -> None:
        """Close the calling thread's connection (a worker's threads call it as they end)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            conn.close()

    def close(self) -> None:
        """Close this thread's connection and drop the others: each is closed as soon as no
        thread uses it any more."""
        self.close_thread()
        self._local = threading.local()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; BEGIN IMMEDIATE takes the write lock up front so two
        processes never both read, then both try to upgrade (which would deadlock)."""
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            raise self._store_error(exc) from None
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    def _read(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        try:
            return self._conn().execute(sql, params)
        except sqlite3.DatabaseError as exc:
            raise self._store_error(exc) from None

    def _store_error(self, exc: sqlite3.DatabaseError) -> StoreError:
        if isinstance(exc, sqlite3.OperationalError) and "no such table" in str(exc):
            return StoreError(f"{self.path} has no underway tables; run `underway migrate`")
        return StoreError(f"SQLite error on {self.path}: {exc}")

    # --- schema -------------------------------------------------------------------------------

    def migrate(self) -> int:
        latest = MIGRATIONS[-1][0]
        try:
            with self._write() as conn:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS underway_migrations ("
                    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
                )
                current = conn.execute(Q["schema_version"]).fetchone()[0] or 0
                if current > latest:
                    raise StoreError(
                        f"{self.path} has schema version {current}, newer than this underway "
                        f"knows ({latest}); upgrade underway"
                    )
                for version, name, sql in MIGRATIONS:
                    if version > current:
                        for statement in _split_statements(sql):
                            conn.execute(statement)
                        conn.execute(
                            "INSERT INTO underway_migrations VALUES (?, ?, ?)",
                            (version, name, time.time()),
                        )
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"cannot set up the underway schema in {self.path}: {exc}. Is it a SQLite "
                "database written by something else, or corrupt?"
            ) from None
        return latest

    # --- clock --------------------------------------------------------------------------------

    def now(self) -> datetime:
        return datetime.now(UTC)

    # --- producers ----------------------------------------------------------------------------

    def enqueue(self, jobs: Sequence[NewJob]) -> list[Job]:
        now = time.time()
        rows = [self._insert_params(job, now) for job in jobs]
        out: list[Job] = []
        with self._write() as conn:
            keyless = [row for row in rows if row["key"] is None]
            if len(keyless) == len(rows):
                conn.executemany(Q["insert_job"], rows)
                created = datetime.fromtimestamp(now, UTC)
                return [
                    self._new_job(job, row, created) for job, row in zip(jobs, rows, strict=True)
                ]
            for job, row in zip(jobs, rows, strict=True):
                cursor = conn.execute(Q["insert_job"], row)
                if cursor.rowcount == 1:
                    out.append(self._new_job(job, row, datetime.fromtimestamp(now, UTC)))
                else:
                    cursor = conn.execute(Q["get_unfinished_by_key"], (row["key"],))
                    out.append(_row_to_job(cursor.fetchone()))
        return out

    def _insert_one(self, conn: sqlite3.Connection, job: NewJob, now: float) -> Job:
        row = self._insert_params(job, now)
        if conn.execute(Q["insert_job"], row).rowcount == 1:
            return self._new_job(job, row, datetime.fromtimestamp(now, UTC))
        return _row_to_job(conn.execute(Q["get_unfinished_by_key"], (row["key"],)).fetchone())

    @staticmethod
    def _insert_params(job: NewJob, now: float) -> dict[str, Any]:
        run_at = job.run_at.timestamp() if job.run_at is not None else now + job.delay
        return {
            "id": str(job.id),
            "task": job.task,
            "title": job.title,
            "args": job.args_json,
            "queue": job.queue,
            "priority": job.priority,
            "max_attempts": job.max_attempts,
            "run_at": run_at,
            "status_message": job.status_message,
            "tenant": job.tenant,
            "callback_url": job.callback_url,
            "key": job.key,
            "schedule": job.schedule,
            "now": now,
        }

    @staticmethod
    def _new_job(job: NewJob, row: dict[str, Any], created: datetime) -> Job:
        due_now = job.run_at is None and job.delay == 0
        return Job(
            id=job.id,
            task=job.task,
            title=job.title,
            args=job.args,
            queue=job.queue,
            priority=job.priority,
            status=Status.PENDING,
            attempt=0,
            max_attempts=job.max_attempts,
            run_at=created if due_now else datetime.fromtimestamp(row["run_at"], UTC),
            created_at=created,
            status_message=job.status_message,
            tenant=job.tenant,
            callback_url=job.callback_url,
            key=job.key,
            schedule=job.schedule,
        )

    # --- workers ------------------------------------------------------------------------------

    def claim(self, worker_id: str, queues: Sequence[str] | None, limit: int) -> list[Claimed]:
        if limit <= 0:
            return []
        queue_sql, params = _queue_filter(queues)
        index = "underway_jobs_claim_queue" if queues else "underway_jobs_claim"
        sql = Q["claim"].replace("{queues}", queue_sql).replace("{claim_index}", index)
        params.update(
            now=time.time(), lease=self.settings.lease_seconds, worker_id=worker_id, limit=limit
        )
        claimed: list[Claimed] = []
        with self._write() as conn:
            # Limited queues first: they are capped, and would starve behind busy free ones.
            for name, concurrency in conn.execute(Q["limited_queues"]).fetchall():
                if (queues and name not in queues) or len(claimed) >= limit:
                    continue
                cursor = conn.execute(
                    Q["claim_limited"],
                    {**params, "queue": name, "concurrency": concurrency,
                     "limit": limit - len(claimed)},
                )  # fmt: skip
                claimed += [_claimed(row) for row in cursor.fetchall()]
            if len(claimed) < limit:
                params["limit"] = limit - len(claimed)
                cursor = conn.execute(sql, params)
                claimed += [_claimed(row) for row in cursor.fetchall()]
        claimed.sort(key=lambda c: (-c.job.priority, c.job.run_at, c.job.id))
        return claimed

    def heartbeat(self, worker_id: str, leases: Sequence[Lease]) -> HeartbeatResult:
        if not leases:
            return HeartbeatResult(frozenset(), frozenset())
        expires = time.time() + self.settings.lease_seconds
        params = [
            {"id": str(lease.job_id), "token": lease.token, "expires": expires} for lease in leases
        ]
        with self._write() as conn:
            conn.executemany(Q["extend_lease"], params)
            sql = Q["lease_states"].replace("{ids}", ",".join("?" * len(leases)))
            states = {row[0]: row for row in conn.execute(sql, [p["id"] for p in params])}
        cancelled, lost = set(), set()
        for lease in leases:
            state = states.get(str(lease.job_id))
            if state is None or state[1] != lease.token or state[2] != "running":
                lost.add(lease.job_id)
            elif state[3]:
                cancelled.add(lease.job_id)
        return HeartbeatResult(frozenset(cancelled), frozenset(lost))

    def report(self, reports: Sequence[Report]) -> None:
        if not reports:
            return
        now = time.time()
        params = [
            {
                "id": str(r.job_id),
                "token": r.token,
                "progress": r.progress,
                "status_message": r.status_message,
                "payload": r.payload_json,
                "now": now,
            }
            for r in reports
        ]
        with self._write() as conn:
            conn.executemany(Q["report"], params)

    def finish(self, outcomes: Sequence[Outcome]) -> set[uuid.UUID]:
        if not outcomes:
            return set()
        now = time.time()
        params = [_finish_params(o, now) for o in outcomes]
        with self._write() as conn:
            cursor = conn.executemany(Q["finish"], params)
            if cursor.rowcount == len(params):
                return {o.job_id for o in outcomes}
            # Some lease was lost: redo one by one to learn which (rare, same transaction).
            conn.execute("ROLLBACK")
            conn.execute("BEGIN IMMEDIATE")
            landed = set()
            for outcome, p in zip(outcomes, params, strict=True):
                if conn.execute(Q["finish"], p).rowcount == 1:
                    landed.add(outcome.job_id)
            return landed

    def rescue(self, max_rescues: int) -> list[Job]:
        with self._write() as conn:
            cursor = conn.execute(Q["rescue"], {"now": time.time(), "max_rescues": max_rescues})
            return [_row_to_job(row) for row in cursor.fetchall()]

    def next_due(self, queues: Sequence[str] | None) -> float | None:
        queue_sql, params = _queue_filter(queues)
        row = self._read(Q["next_due"].replace("{queues}", queue_sql), params).fetchone()
        return None if row[0] is None else float(row[0]) - time.time()

    def wait_for_change(self, timeout: float) -> bool:
        # PRAGMA data_version changes when another connection commits; reading it touches only
        # the WAL index in shared memory, so checking every few milliseconds costs next to
        # nothing. The reading is kept per thread, so no change between two calls is missed.
        deadline = time.monotonic() + timeout
        conn = self._conn()
        while True:
            try:
                version: int = conn.execute("PRAGMA data_version").fetchone()[0]
            except sqlite3.DatabaseError as exc:
                raise self._store_error(exc) from None
            if version != self._local.data_version:
                self._local.data_version = version
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(self.settings.wake_check_seconds, remaining))

    # --- inspection and control ---------------------------------------------------------------

    def get(self, job_id: uuid.UUID) -> Job | None:
        cursor = self._read(Q["get"], (str(job_id),))
        row = cursor.fetchone()
        return None if row is None else _row_to_job(row)

    def list_jobs(self, where: JobFilter, limit: int, cursor: str | None) -> Page:
        clauses, params = _filter_sql(where, time.time())
        if cursor:
            clauses.append("id < ?")
            params.append(cursor)
        sql = "SELECT * FROM underway_jobs"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit + 1)
        cur = self._read(sql, params)
        rows = cur.fetchall()
        jobs = [_row_to_job(row) for row in rows[:limit]]
        next_cursor = str(jobs[-1].id) if len(rows) > limit and jobs else None
        return Page(jobs, next_cursor)

    def cancel(self, job_id: uuid.UUID) -> Job:
        params = {"id": str(job_id), "now": time.time()}
        with self._write() as conn:
            for name in ("cancel_pending", "request_cancel"):
                cursor = conn.execute(Q[name], params)
                row = cursor.fetchone()
                if row is not None:
                    return _row_to_job(row)
        job = self._require(job_id)
        if job.status is Status.CANCELLED:
            return job
        raise InvalidTransition(f"job {job_id} is already {job.status}; it cannot be cancelled")

    def retry(self, job_id: uuid.UUID) -> Job:
        try:
            with self._write() as conn:
                cursor = conn.execute(Q["retry"], {"id": str(job_id), "now": time.time()})
                row = cursor.fetchone()
        except sqlite3.IntegrityError:
            job = self._require(job_id)
            raise DuplicateKey(
                f"job {job_id} cannot be retried: another unfinished job holds its key {job.key!r}"
            ) from None
        if row is not None:
            return _row_to_job(row)
        job = self._require(job_id)
        raise InvalidTransition(
            f"job {job_id} is {job.status}; only failed or cancelled jobs can be retried"
        )

    def stats(self) -> Stats:
        rows = self._read(Q["stats"]).fetchall()
        scheduled, retrying = self._read(Q["stats_pending_views"], {"now": time.time()}).fetchone()
        return build_stats(rows, scheduled, retrying)

    # --- queues and retention -----------------------------------------------------------------

    def set_queue_paused(self, name: str, paused: bool) -> None:
        with self._write() as conn:
            conn.execute(
                Q["set_queue_paused"], {"name": name, "paused": paused, "now": time.time()}
            )

    def set_queue_concurrency(self, name: str, concurrency: int | None) -> None:
        params = {"name": name, "concurrency": concurrency, "now": time.time()}
        with self._write() as conn:
            conn.execute(Q["set_queue_concurrency"], params)

    def queues(self) -> list[QueueInfo]:
        return build_queues(self._read(Q["queues"]).fetchall(), self.stats().by_queue)

    def prune(self, older_than: float, statuses: Sequence[Status], batch: int = 1000) -> int:
        params = {
            "statuses": json.dumps([Status(st).value for st in statuses]),
            "before": time.time() - older_than,
            "batch": batch,
        }

        def delete_batch() -> int:
            with self._write() as conn:
                return int(conn.execute(Q["prune"], params).rowcount)

        return prune_in_batches(delete_batch, batch)

    # --- schedules ----------------------------------------------------------------------------

    def register_schedule(self, name: str, task: str, rule: str, anchor: datetime) -> ScheduleState:
        params = {"name": name, "task": task, "rule": rule, "anchor": anchor.timestamp(),
                  "now": time.time()}  # fmt: skip
        with self._write() as conn:
            conn.execute(Q["register_schedule"], params)
            return _schedule_state(conn.execute(Q["schedule_state"], (name,)).fetchone())

    def schedule_states(self) -> list[ScheduleState]:
        return [_schedule_state(row) for row in self._read(Q["schedule_states"]).fetchall()]

    def fire_schedule(
        self, name: str, slot: datetime, job: NewJob | None, overlap: str
    ) -> Job | None:
        slot_ts = slot.timestamp()
        now = time.time()
        with self._write() as conn:
            state = conn.execute(Q["schedule_state"], (name,)).fetchone()
            if state is None or state["paused"]:
                return None
            if state["last_slot"] is not None and state["last_slot"] >= slot_ts:
                return None  # another scheduler handled this slot already
            busy = (
                job is not None
                and overlap != "allow"
                and conn.execute(Q["schedule_busy"], (name,)).fetchone() is not None
            )
            if busy and overlap == "wait":
                return None  # try again once the unfinished one is done
            if busy:
                job = None  # "skip": this slot is dropped
            params = {"name": name, "slot": slot_ts, "fired": job is not None, "now": now}
            conn.execute(Q["advance_schedule"], params)
            return None if job is None else self._insert_one(conn, job, now)

    def trigger_schedule(self, name: str, job: NewJob) -> Job:
        now = time.time()
        with self._write() as conn:
            if conn.execute(Q["schedule_state"], (name,)).fetchone() is None:
                raise JobNotFound(f"no schedule named {name!r}")
            conn.execute(Q["count_schedule_run"], {"name": name, "now": now})
            return self._insert_one(conn, job, now)

    def set_schedule_paused(self, name: str, paused: bool) -> None:
        with self._write() as conn:
            params = {"name": name, "paused": paused, "now": time.time()}
            if conn.execute(Q["set_schedule_paused"], params).rowcount == 0:
                raise JobNotFound(f"no schedule named {name!r}")

    def run_stats(self) -> tuple[dict[str, RunStats], dict[str, RunStats]]:
        out = []
        for group in ("task", "schedule"):
            parts = [
                self._read(Q[name].replace("{group}", group)).fetchall()
                for name in ("run_aggregates", "run_recent", "run_running")
            ]
            aggregates = [
                (n, runs, fails, _ts(last), avg) for n, runs, fails, last, avg in parts[0]
            ]
            out.append(build_run_stats(aggregates, parts[1], parts[2]))
        return out[0], out[1]

    # --- rows ---------------------------------------------------------------------------------

    def _require(self, job_id: uuid.UUID) -> Job:
        job = self.get(job_id)
        if job is None:
            raise JobNotFound(f"no job with id {job_id}")
        return job


def _claimed(row: sqlite3.Row) -> Claimed:
    return Claimed(_row_to_job(row), row["lease_token"])


def _schedule_state(r: sqlite3.Row) -> ScheduleState:
    return ScheduleState(
        name=r["name"], task=r["task"], rule=r["rule"],
        anchor=datetime.fromtimestamp(r["anchor"], UTC), last_slot=_ts(r["last_slot"]),
        next_run=_ts(r["next_run"]), paused=bool(r["paused"]), run_count=r["run_count"],
    )  # fmt: skip


def _row_to_job(r: sqlite3.Row) -> Job:
    error = None
    if r["error_message"] is not None:
        error = JobError(r["error_message"], r["error_type"] or "", r["error_traceback"] or "")
    return Job(
        id=uuid.UUID(r["id"]),
        task=r["task"],
        title=r["title"],
        args=json.loads(r["args"]),
        queue=r["queue"],
        priority=r["priority"],
        status=Status(r["status"]),
        attempt=r["attempt"],
        max_attempts=r["max_attempts"],
        run_at=_ts(r["run_at"]),  # type: ignore[arg-type]
        created_at=_ts(r["created_at"]),  # type: ignore[arg-type]
        progress=r["progress"],
        status_message=r["status_message"],
        payload=None if r["payload"] is None else json.loads(r["payload"]),
        result=None if r["result"] is None else json.loads(r["result"]),
        error=error,
        tenant=r["tenant"],
        callback_url=r["callback_url"],
        key=r["key"],
        started_at=_ts(r["started_at"]),
        completed_at=_ts(r["completed_at"]),
        cancel_requested=bool(r["cancel_requested"]),
        schedule=r["schedule"],
        rescues=r["rescues"],
    )


def _finish_params(o: Outcome, now: float) -> dict[str, Any]:
    error = o.error
    return {
        "id": str(o.job_id),
        "token": o.token,
        "status": o.status.value,
        "result": o.result_json,
        # A completed job shows no error from its earlier attempts; a hand-back keeps it.
        "has_error": error is not None or o.status is Status.COMPLETED,
        "error_message": error.message if error else None,
        "error_type": error.type if error else None,
        "error_traceback": error.traceback if error else None,
        "refund": 0 if o.spend_attempt else 1,
        "retry_in": o.retry_in or 0.0,
        "report": o.report_dirty,
        "progress": o.progress,
        "status_message": o.status_message,
        "payload": o.payload_json,
        "now": now,
    }


def _filter_sql(where: JobFilter, now: float) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("status", where.status),
        ("task", where.task),
        ("queue", where.queue),
        ("tenant", where.tenant),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(str(value))
    if where.view is View.SCHEDULED:
        clauses.append("status = 'pending' AND run_at > ?")
        params.append(now)
    elif where.view is View.RETRYING:
        clauses.append("status = 'pending' AND attempt > 0")
    return clauses, params


def _path_from_url(url: str) -> str:
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
    elif url.startswith("sqlite://"):
        path = url[len("sqlite://") :]
    elif url.startswith("sqlite:"):
        path = url[len("sqlite:") :]
    else:
        path = url
    path = path.split("?", 1)[0]
    if not path:
        raise StoreError("the SQLite URL names no file; use sqlite:///path/to/underway.db")
    return path


def _split_statements(sql: str) -> list[str]:
    # Migrations hold plain DDL with no semicolons inside statements.
    body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]
