"""SQLite store. Writes take the database's single write lock (BEGIN IMMEDIATE), which makes
claiming atomic across processes; WAL lets readers go on meanwhile."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ...errors import JobExists, StoreError
from ...model import Job, Status
from ...settings import Settings
from ..buckets import take_tokens
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
from .filewatch import FileWatch
from .listener import DataVersionListener

Q = load_queries(__name__.rsplit(".", 1)[0])
MIGRATIONS = load_migrations(__name__.rsplit(".", 1)[0])
MIN_SQLITE = (3, 35, 0)  # UPDATE ... RETURNING


def _ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


#: Times are Unix seconds (REAL), ids text (UUIDv7, so text order is creation order), JSON text.
VALUES = Values(
    load_id=uuid.UUID,
    load_time=_ts,
    load_json=json.loads,
    load_flag=bool,
    dump_id=str,
    dump_time=datetime.timestamp,
    dump_list=json.dumps,
)
_job = job_mapper(VALUES)

#: how often a watcher's thread reads the file's data version, and how often a busy worker
#: asks whether one of its jobs was asked to cancel (SQLite has no notices to push either)
FEED_CHECK_SECONDS = 0.01
CANCEL_CHECK_SECONDS = 0.25


def _queue_shape(queues: Sequence[str] | None) -> tuple[str, dict[str, Any]]:
    """Which queue filter a claim or next_due takes, and its parameters."""
    if not queues:
        return "all", {}
    return "many", {"queues": json.dumps(queues)}


def _render_suspect_claims() -> dict[str, str]:
    """The claims of suspects, jobs a crash was rescued from (worker/suspects.py), by
    `_queue_shape`, each with the index that fits it (without INDEXED BY the planner prefers
    the status index and sorts every pending job), and the claim of one limited queue
    ("limited"). They only ever take suspects; the fair claim never does."""
    only, index = Q["only_suspects"], "underway_jobs_suspects"
    return {
        "all": render(Q["claim"], queues="", claim_index=index, suspects=only),
        "many": render(Q["claim"], queues=Q["filter_queues"], claim_index=index, suspects=only),
        "limited": render(Q["claim_limited"], suspects=only),
    }


def _render_by_shape(name: str) -> dict[str, str]:
    """A statement whose {queues} is a queue filter, by `_queue_shape`."""
    return {"all": render(Q[name], queues=""), "many": render(Q[name], queues=Q["filter_queues"])}


def feed_position(cursor: str) -> dict[str, Any]:
    """A feed cursor, the change's seq, as the changes statement takes it."""
    seq = int(cursor)
    if not 0 <= seq < 2**63:  # SQLite's INTEGER; a bigger one would not even bind
        raise ValueError(cursor)
    return {"seq": seq}


class SqliteStore(ScheduleRows[sqlite3.Connection], MeteringVerbs[sqlite3.Connection]):
    """A `Store` on one SQLite file. Each thread gets its own connection."""

    #: one writer at a time anyway: a second connection of ours would only queue on the lock
    concurrent_writes = False
    values = VALUES
    duplicate_key_error = sqlite3.IntegrityError

    def __init__(self, url: str, settings: Settings) -> None:
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise StoreError(
                f"SQLite {sqlite3.sqlite_version} is too old; underway needs 3.35 or newer "
                "(upgrade Python or the system SQLite)"
            )
        super().__init__(Q, {})
        self.url = url
        # Absolute: a later chdir must not point new connections at another file.
        path = _path_from_url(url)
        self.path = path if path == ":memory:" else os.path.abspath(path)
        self.settings = settings
        # the statements whose fragments vary, rendered once
        self.claims = Claims(Q, _render_suspect_claims(), _job)
        self.suspect_due_sql = _render_by_shape("suspect_due")
        self.next_due_sql = _render_by_shape("next_due")
        # lease_states with one ? per lease, by lease count, rendered on first use
        self._lease_states: dict[int, str] = {}
        # One connection per thread, held only by the thread's local storage: closing one that
        # another thread is using can crash the interpreter, so each is closed by its own
        # thread (close_thread), or freed with the local storage once no thread uses it.
        self._local = threading.local()
        self._reader = _Reading(self._conn, self._store_error)
        self._file = FileWatch(self.path)

    # --- connections --------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path)
            self._local.conn = conn
            self._local.data_version = None
            self._file.check(force=True)
        else:
            self._file.check()
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
        """One write transaction, holding the write lock from its start (see `begin`)."""
        conn = self._conn()
        try:
            conn.execute(Q["begin"])
        except sqlite3.DatabaseError as exc:
            raise self._store_error(exc) from None
        try:
            yield conn
            conn.execute(Q["commit"])
        except BaseException as exc:
            # SQLite may have rolled back already (a full disk does): nothing left to undo then.
            with contextlib.suppress(sqlite3.OperationalError):
                conn.execute(Q["rollback"])
            if isinstance(exc, sqlite3.OperationalError):  # the file or disk, not our data
                raise self._store_error(exc) from None
            raise

    def _read(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        try:
            return self._conn().execute(sql, params)
        except sqlite3.DatabaseError as exc:
            raise self._store_error(exc) from None

    def _store_error(self, exc: sqlite3.DatabaseError) -> StoreError:
        text = str(exc)
        if isinstance(exc, sqlite3.OperationalError):
            for needle, what in _OPERATIONAL_ERRORS:
                if needle in text:
                    return StoreError(what.format(path=self.path, error=text))
        return StoreError(f"SQLite error on {self.path}: {exc}")

    # --- what the shared verbs run on (sql.SqlStore) ------------------------------------------

    def _reading(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._reader

    def _writing(self, atomic: bool = False) -> AbstractContextManager[sqlite3.Connection]:
        return self._write()  # every write transaction holds the lock, so each is atomic

    def _records(self, cursor: sqlite3.Cursor) -> list[Row]:
        rows: list[Row] = cursor.fetchall()  # sqlite3.Row: by name and by position
        return rows

    def _stamp(self) -> dict[str, Any]:
        return {"now": time.time()}

    def horizon_holders(self, older_than: float) -> list[HorizonHolder]:
        return []  # a reader holds no dead rows back here, only the WAL's checkpoint

    def _clock_skew(self, conn: sqlite3.Connection) -> float | None:
        return None  # the store's clock is this process's own

    def _insert_within(self, conn: sqlite3.Connection, job: NewJob, stamp: dict[str, Any]) -> Job:
        now: float = stamp["now"]
        row = _insert_params(job, now)
        if conn.execute(Q["insert_jobs"], row).rowcount == 1:
            return _new_job(job, row, datetime.fromtimestamp(now, UTC))
        return _job(conn.execute(Q["unfinished_by_key"], {"key": row["key"]}).fetchone())

    # --- schema -------------------------------------------------------------------------------

    def migrate(self) -> int:
        latest = MIGRATIONS[-1][0]
        try:
            with self._write() as conn:
                conn.execute(Q["create_migrations_table"])
                applied = [row[0] for row in conn.execute(Q["applied_migrations"])]
                for version, name, sql in unapplied(MIGRATIONS, applied, str(self.path)):
                    for statement in _split_statements(sql):
                        conn.execute(statement)
                    conn.execute(
                        Q["record_migration"],
                        {"version": version, "name": name, "applied_at": time.time()},
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

    def enqueue(self, jobs: Sequence[NewJob], quotas: Sequence[QuotaDemand] = ()) -> list[Job]:
        now = time.time()
        rows = [_insert_params(job, now) for job in jobs]
        out: list[Job] = []
        with self._write() as conn:
            if quotas:
                _take_tokens(conn, quotas)
            _refuse_existing_ids(conn, jobs)
            keyless = [row for row in rows if row["key"] is None]
            if len(keyless) == len(rows):
                conn.executemany(Q["insert_jobs"], rows)
                created = datetime.fromtimestamp(now, UTC)
                return [_new_job(job, row, created) for job, row in zip(jobs, rows, strict=True)]
            for job, row in zip(jobs, rows, strict=True):
                cursor = conn.execute(Q["insert_jobs"], row)
                if cursor.rowcount == 1:
                    out.append(_new_job(job, row, datetime.fromtimestamp(now, UTC)))
                else:
                    cursor = conn.execute(Q["unfinished_by_key"], {"key": row["key"]})
                    out.append(_job(cursor.fetchone()))
        return out

    # --- workers ------------------------------------------------------------------------------

    def claim(
        self, worker_id: str, queues: Sequence[str] | None, limit: int, suspects: bool = False
    ) -> list[Claimed]:
        if limit <= 0:
            return []
        _, params = _queue_shape(queues)
        params.update(
            now=time.time(), lease=self.settings.lease_seconds, worker_id=worker_id, limit=limit
        )
        with self._write() as conn:
            claimed = self.claims.claim(conn, queues, params, suspects)
        claimed.sort(key=lambda c: (-c.job.priority, c.job.run_at, c.job.id))
        return claimed

    def suspect_due(self, queues: Sequence[str] | None) -> bool:
        shape, params = _queue_shape(queues)
        params["now"] = time.time()
        return self._read(self.suspect_due_sql[shape], params).fetchone() is not None

    def heartbeat(self, worker_id: str, leases: Sequence[Lease]) -> HeartbeatResult:
        if not leases:
            return HeartbeatResult(frozenset(), frozenset())
        with self._write() as conn:
            # The lease runs from now that the write lock is ours, not from before waiting for
            # it: after a long stall, a lease dated from before it would already be over.
            params = _lease_params(leases, time.time() + self.settings.lease_seconds)
            conn.executemany(Q["heartbeat"], params)
            states = {
                row[0]: row
                for row in conn.execute(self._states_sql(len(leases)), [p["id"] for p in params])
            }
        cancelled, lost = set(), set()
        for lease in leases:
            state = states.get(str(lease.job_id))
            if state is None or state[1] != lease.token or state[2] != "running":
                lost.add(lease.job_id)
            elif state[3]:
                cancelled.add(lease.job_id)
        return HeartbeatResult(frozenset(cancelled), frozenset(lost))

    def _states_sql(self, count: int) -> str:
        text = self._lease_states.get(count)
        if text is None:
            text = self._lease_states[count] = render(Q["lease_states"], ids=",".join("?" * count))
        return text

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
            conn.execute(Q["rollback"])
            conn.execute(Q["begin"])
            landed = set()
            for outcome, p in zip(outcomes, params, strict=True):
                if conn.execute(Q["finish"], p).rowcount == 1:
                    landed.add(outcome.job_id)
            return landed

    def rescue(self, max_rescues: int) -> list[Job]:
        # Expired as of the call, not as of when the write lock came: a lease that ran out
        # while everyone waited for the lock belongs to a holder that could not renew it.
        params = {"now": time.time(), "max_rescues": max_rescues}
        with self._write() as conn:
            cursor = conn.execute(Q["rescue"], params)
            return [_job(row) for row in cursor.fetchall()]

    def next_due(self, queues: Sequence[str] | None) -> float | None:
        shape, params = _queue_shape(queues)
        row = self._read(self.next_due_sql[shape], params).fetchone()
        return None if row[0] is None else float(row[0]) - time.time()

    def _feed_position(self, cursor: str) -> dict[str, Any]:
        return feed_position(cursor)

    def listen(self, topic: Topic) -> Listener:
        if topic == "cancels":
            return Ticker(CANCEL_CHECK_SECONDS)
        every = max(self.settings.wake_check_seconds, FEED_CHECK_SECONDS)
        return DataVersionListener(lambda: _connect(self.path), Q["data_version"], every)

    def keep_listening(self) -> None:
        pass  # the data version is read afresh at each wait: nothing to keep

    def wait_for_change(self, timeout: float) -> bool:
        # The data version changes when another connection commits; reading it touches only
        # the WAL index in shared memory, so checking every few milliseconds costs next to
        # nothing. The reading is kept per thread, so no change between two calls is missed.
        deadline = time.monotonic() + timeout
        conn = self._conn()
        while True:
            try:
                version: int = conn.execute(Q["data_version"]).fetchone()[0]
            except sqlite3.DatabaseError as exc:
                raise self._store_error(exc) from None
            if version != self._local.data_version:
                self._local.data_version = version
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(self.settings.wake_check_seconds, remaining))


def _connect(path: str) -> sqlite3.Connection:
    """A new connection to `path`, in WAL mode with the store's settings."""
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60.0)
        conn.row_factory = sqlite3.Row  # name lookups done in C, no dict per row
        conn.execute(Q["set_busy_timeout"])
        mode = conn.execute(Q["set_journal_wal"]).fetchone()[0]
        conn.execute(Q["set_synchronous"])
        conn.execute(Q["set_foreign_keys"])
    except sqlite3.DatabaseError as exc:
        raise _open_error(path, exc) from None
    if mode.lower() != "wal" and path != ":memory:":
        raise StoreError(f"could not switch {path} to WAL mode (got {mode!r})")
    return conn


def _take_tokens(conn: sqlite3.Connection, quotas: Sequence[QuotaDemand]) -> None:
    """Take the quotas' tokens in the enqueue's write transaction. The clock is read here,
    with the write lock held, so the refills of all processes follow one another in time."""

    def fetch_one(text: str, params: Any) -> Any:
        return conn.execute(text, params).fetchone()

    take_tokens(fetch_one, Q["take_tokens"], Q["bucket_tokens"], quotas, {"now": time.time()})


def _refuse_existing_ids(conn: sqlite3.Connection, jobs: Sequence[NewJob]) -> None:
    """Caller-chosen ids must be new; the write lock is held, so none can appear meanwhile."""
    chosen = [str(job.id) for job in jobs if job.id_chosen]
    if chosen:
        taken = conn.execute(Q["existing_ids"], {"ids": json.dumps(chosen)}).fetchall()
        if taken:
            raise JobExists.naming(row[0] for row in taken)


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
        "slot": None if job.slot is None else job.slot.timestamp(),
        "now": now,
    }


def _new_job(job: NewJob, row: dict[str, Any], created: datetime) -> Job:
    due_now = job.run_at is None and job.delay == 0
    return job.pending(created if due_now else datetime.fromtimestamp(row["run_at"], UTC), created)


class _Reading:
    """The calling thread's connection for reads, SQLite errors turned into StoreErrors. A
    plain class, not a generator: reads such as `get` are short enough for that to show."""

    __slots__ = ("_connection", "_error")

    def __init__(
        self,
        connection: Callable[[], sqlite3.Connection],
        error: Callable[[sqlite3.DatabaseError], StoreError],
    ) -> None:
        self._connection = connection
        self._error = error

    def __enter__(self) -> sqlite3.Connection:
        return self._connection()

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, sqlite3.DatabaseError):
            raise self._error(exc) from None


def _open_error(path: str, exc: sqlite3.DatabaseError) -> StoreError:
    where = os.path.dirname(os.path.abspath(path))
    if path != ":memory:" and not os.access(where, os.W_OK):
        # WAL mode needs its -wal and -shm files beside the database, even to read it.
        return StoreError(
            f"{path} cannot be opened: its directory {where} cannot be written (it, or the disk "
            "it is on, is read-only), and SQLite in WAL mode writes its -wal and -shm files "
            f"there; make it writable for this user ({exc})"
        )
    if isinstance(exc, sqlite3.OperationalError) and any(
        needle in str(exc) for needle in ("disk I/O error", "database or disk is full")
    ):
        return StoreError(
            f"{path} cannot be opened: the disk under it is full or failing, and SQLite needs "
            f"room for its -wal and -shm files; free some space ({exc})"
        )
    return StoreError(
        f"{path} is not a usable SQLite database ({exc}). Point the URL at an underway "
        "database or at a new file; underway will create it."
    )


def _lease_params(leases: Sequence[Lease], expires: float) -> list[dict[str, Any]]:
    return [{"id": str(lease.job_id), "token": lease.token, "expires": expires} for lease in leases]


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


#: What SQLite's errors about the file or its disk mean, and what to do (nothing of the failed
#: call was written: its transaction rolled back).
_OPERATIONAL_ERRORS = (
    ("no such table", "{path} has no underway tables; run `underway migrate`"),
    ("database or disk is full",
     "the disk under {path} is full, so nothing of this call was written: free some space "
     "(or prune finished jobs) and it works again ({error})"),
    ("readonly",
     "{path} cannot be written, so nothing of this call was written: its file, its directory "
     "or the disk it is on is read-only; make them writable for this user ({error})"),
    ("disk I/O error",
     "the disk under {path} failed a read or write, so nothing of this call was written: "
     "check the disk and the file system ({error})"),
)  # fmt: skip


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
    """The statements of a migration, one by one: a trigger's body holds semicolons of its own,
    so a statement ends where SQLite says it is complete, not at every semicolon."""
    statements: list[str] = []
    pending = ""
    for line in sql.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        statements.append(pending.strip())
    return statements
