"""What both SQL stores share, written once: the control verbs (cancel, retry, queue controls,
prune, the schedule verbs with their overlap policy), inspection (get, list_jobs with its
filters and paging, stats, run stats), and the one mapping from a row to a `Job`.

A backend keeps only what truly differs: its connections and transactions, its hot paths
(enqueue, claim, heartbeat, report, finish, rescue, next_due, wait_for_change), migrate, now,
and how its values travel (`Values`). Every statement lives in the backend's queries.sql under
the same names in both dialects.
"""

from __future__ import annotations

import functools
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from ..errors import (
    DuplicateKey,
    InvalidTransition,
    JobNotFound,
    KeyNotFound,
    ScheduleNotFound,
)
from ..keys import ApiKey, NewKey, StoredKey
from ..model import (
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    Job,
    JobError,
    Page,
    QueueInfo,
    RunStats,
    Stats,
    Status,
    UnreadableArgs,
    View,
)
from ..settings import Settings
from .messages import DeliveryResult, DueDelivery, JobFilter, NewJob, ScheduleState
from .sqlfile import placeholders, render


class Row(Protocol):
    """A result row addressable by column name (sqlite3.Row, or a dict on PostgreSQL)."""

    def __getitem__(self, key: str, /) -> Any: ...


class Cursor(Protocol):
    """What the shared algorithms read from an executed statement."""

    @property
    def rowcount(self) -> int: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """The one call the shared algorithms make on a backend's connection."""

    def execute(self, sql: str, params: Any = ..., /) -> Cursor: ...


C = TypeVar("C", bound=Connection)


def unchanged(value: Any) -> Any:
    """A value as it is: the loader or dumper of a value the driver already speaks."""
    return value


@dataclass(frozen=True, slots=True)
class Values:
    """How values travel between Python and a backend's columns and parameters.

    A loader left None means the driver already returns the Python type (PostgreSQL), so the
    row mapper calls nothing for it; `load_time` is also handed NULLs, `load_json` never is.
    """

    load_id: Callable[[Any], uuid.UUID] | None = None
    load_time: Callable[[Any], datetime | None] | None = None
    load_json: Callable[[Any], Any] | None = None
    load_flag: Callable[[Any], bool] | None = None
    dump_id: Callable[[uuid.UUID], Any] = unchanged
    dump_time: Callable[[datetime], Any] = unchanged
    dump_list: Callable[[list[str]], Any] = unchanged
    #: a list_jobs cursor as the id comparison takes it (it may be any text a client sent)
    dump_cursor: Callable[[str], Any] = unchanged


# --- rows --------------------------------------------------------------------------------------

# Each Job field, read from the column of the same name, and how it is loaded: by one of the
# backend's loaders ("id", "time", "json"; "json?" when the column may be NULL), as a Status,
# or as the driver returns it (None). The error is assembled from three columns apart.
JOB_COLUMNS: tuple[tuple[str, str | None], ...] = (
    ("id", "id"), ("task", None), ("title", None), ("args", "args"), ("queue", None),
    ("priority", None), ("status", "status"), ("attempt", None), ("max_attempts", None),
    ("run_at", "time"), ("created_at", "time"), ("progress", None), ("status_message", None),
    ("payload", "json?"), ("result", "json?"), ("tenant", None), ("callback_url", None),
    ("key", None), ("started_at", "time"), ("completed_at", "time"),
    ("cancel_requested", "flag"), ("schedule", None), ("rescues", None), ("updated_at", "time"),
    ("slot", "time"),
)  # fmt: skip

_ROW_TO_JOB = """\
def row_to_job(r):
    error = None
    if r["error_message"] is not None:
        error = JobError(r["error_message"], r["error_type"] or "", r["error_traceback"] or "")
    return Job(error=error, {fields})
"""


@functools.cache
def job_mapper(values: Values) -> Callable[[Row], Job]:
    """The function that turns a job row into a `Job` with `values`' loaders: `JOB_COLUMNS`
    written out as one expression. It is compiled once per backend rather than calling an
    identity function per column, because claims map every row they take and PostgreSQL,
    whose driver needs no loader, would pay a call per column for nothing."""
    json = values.load_json
    loaders = {"id": values.load_id, "time": values.load_time, "flag": values.load_flag,
               "json": None if json is None else _or_as_stored(json),
               "args": None if json is None else _args_or_unreadable(json)}  # fmt: skip
    fields = []
    for column, kind in JOB_COLUMNS:
        cell = f"r[{column!r}]"
        if kind == "status":
            cell = f"Status({cell})"
        elif kind is not None and loaders[kind.rstrip("?")] is not None:
            call = f"load_{kind.rstrip('?')}({cell})"
            cell = f"None if {cell} is None else {call}" if kind.endswith("?") else call
        fields.append(f"{column}={cell}")
    namespace: dict[str, Any] = {"Job": Job, "JobError": JobError, "Status": Status}
    namespace.update({f"load_{name}": fn for name, fn in loaders.items() if fn is not None})
    exec(_ROW_TO_JOB.format(fields=", ".join(fields)), namespace)
    mapper: Callable[[Row], Job] = namespace["row_to_job"]
    return mapper


def _args_or_unreadable(load: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Arguments that are no JSON become UnreadableArgs: one bad row must never make a
    claim (which maps every row it takes) fail for every job behind it."""

    def load_args(text: Any) -> Any:
        try:
            return load(text)
        except ValueError as exc:
            return UnreadableArgs(str(text), f"they are not JSON ({exc})")

    return load_args


def _or_as_stored(load: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A result or payload that is no JSON is shown as the text stored, not an error."""

    def load_json(text: Any) -> Any:
        try:
            return load(text)
        except ValueError:
            return text

    return load_json


def schedule_state(r: Row, values: Values) -> ScheduleState:
    """A schedule row as the scheduler reads it."""
    load_time: Callable[[Any], Any] = values.load_time or unchanged
    return ScheduleState(
        name=r["name"], task=r["task"], rule=r["rule"], anchor=load_time(r["anchor"]),
        last_slot=load_time(r["last_slot"]), next_run=load_time(r["next_run"]),
        paused=bool(r["paused"]), run_count=r["run_count"], tenant=r["tenant"],
        definition=r["definition"], tenants=r["tenants"],
    )  # fmt: skip


def due_delivery(r: Row, values: Values) -> DueDelivery:
    """A claimed delivery row as the sender reads it."""
    load_id: Callable[[Any], Any] = values.load_id or unchanged
    load_time: Callable[[Any], Any] = values.load_time or unchanged
    return DueDelivery(
        id=r["id"], job_id=load_id(r["job_id"]), type=r["type"], url=r["url"],
        attempts=r["attempts"], created_at=load_time(r["created_at"]), token=r["lease_token"],
    )  # fmt: skip


def build_deliveries(
    rows: Sequence[Row], attempt_rows: Sequence[Row], values: Values
) -> list[Delivery]:
    """A job's deliveries from their rows, each with its attempts in order."""
    load_id: Callable[[Any], Any] = values.load_id or unchanged
    load_time: Callable[[Any], Any] = values.load_time or unchanged
    attempts: dict[str, list[DeliveryAttempt]] = {}
    for a in attempt_rows:
        attempts.setdefault(a["delivery_id"], []).append(
            DeliveryAttempt(a["number"], load_time(a["at"]), a["status_code"], a["error"],
                            float(a["duration"]))
        )  # fmt: skip
    out = []
    for r in rows:
        status = DeliveryStatus(r["status"])
        out.append(
            Delivery(
                id=r["id"], job_id=load_id(r["job_id"]), type=r["type"], url=r["url"],
                status=status, created_at=load_time(r["created_at"]),
                next_at=load_time(r["next_at"]) if status is DeliveryStatus.PENDING else None,
                delivered_at=load_time(r["delivered_at"]), last_error=r["last_error"],
                last_status_code=r["last_status_code"],
                attempts=tuple(attempts.get(r["id"], ())),
            )
        )  # fmt: skip
    return out


# --- assembling results ------------------------------------------------------------------------


def build_stats(
    rows: Sequence[Sequence[Any]], scheduled: int, retrying: int, tenant: str | None = None
) -> Stats:
    """Stats from (task, queue, tenant, status, count) rows, the same for every store."""
    by_status: dict[str, int] = {st.value: 0 for st in Status}
    by_task: dict[str, dict[str, int]] = {}
    by_queue: dict[str, dict[str, int]] = {}
    by_tenant: dict[str, dict[str, int]] = {}
    for task, queue, owner, status, count in rows:
        by_status[status] += count
        for table, name in ((by_task, task), (by_queue, queue), (by_tenant, owner)):
            if name is not None:
                counts = table.setdefault(name, {st.value: 0 for st in Status})
                counts[status] += count
    return Stats(by_status, by_task, by_queue, by_tenant=by_tenant, tenant=tenant,
                 scheduled=scheduled, retrying=retrying)  # fmt: skip


def build_queues(
    controls: Sequence[Sequence[Any]], by_queue: dict[str, dict[str, int]]
) -> list[QueueInfo]:
    """QueueInfo for every queue with jobs or controls, from (name, paused, concurrency) rows."""
    known = {row[0]: row for row in controls}
    return [
        QueueInfo(
            name,
            paused=bool(known[name][1]) if name in known else False,
            concurrency=known[name][2] if name in known else None,
            counts=by_queue.get(name, {st.value: 0 for st in Status}),
        )
        for name in sorted(set(known) | set(by_queue))
    ]


def prune_in_batches(delete_batch: Callable[[], int], batch: int) -> int:
    """Call `delete_batch` (one short transaction deleting at most `batch` rows) until a batch
    comes back short, so writers never wait long behind a prune."""
    deleted = 0
    while True:
        count = delete_batch()
        deleted += count
        if count < batch:
            return deleted


def build_run_stats(
    aggregates: Sequence[Sequence[Any]],
    recent: Sequence[Sequence[Any]],
    running: Sequence[Sequence[Any]],
) -> dict[str, RunStats]:
    """Assemble RunStats from three small query results, the same for every store:
    aggregates (name, runs, failures, durations summed in microseconds), recent finished runs
    newest first per name (name, status, duration, started_at), and running counts (name,
    count)."""
    streaks: dict[str, list[tuple[str, float | None, datetime | None]]] = {}
    for name, status, duration, started_at in recent:
        streaks.setdefault(name, []).append((status, duration, started_at))
    running_by = {name: count for name, count in running}
    out: dict[str, RunStats] = {}
    for name, runs, failures, duration in aggregates:
        history = streaks.get(name, [])
        consecutive = 0
        for status, _, _ in history:
            if status != Status.FAILED:
                break
            consecutive += 1
        out[name] = RunStats(
            runs=int(runs),
            failures=int(failures or 0),
            last_run=history[0][2] if history else None,
            last_status=history[0][0] if history else None,
            last_duration=None if not history or history[0][1] is None else float(history[0][1]),
            average_duration=int(duration) / int(runs) / 1e6,
            consecutive_failures=consecutive,
            running=running_by.get(name, 0),
        )
    for name, count in running_by.items():
        out.setdefault(name, RunStats(running=count))
    return out


def list_filters(
    where: JobFilter, dump_time: Callable[[datetime], Any] = unchanged
) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The list_jobs filter fragments that apply (their names without `filter_`, in the order
    the statement takes them) and their parameters."""
    names: list[str] = []
    params: dict[str, Any] = {}
    for column, value in (
        ("status", where.status),
        ("task", where.task),
        ("queue", where.queue),
        ("tenant", where.tenant),
        ("key", where.key),
    ):
        if value is not None:
            names.append(column)
            params[column] = str(value)
    for bound, time in (("created_after", where.created_after),
                        ("created_before", where.created_before)):  # fmt: skip
        if time is not None:
            names.append(bound)
            params[bound] = dump_time(time)
    if where.view is View.SCHEDULED:
        names.append("scheduled")
    elif where.view is View.RETRYING:
        names.append("retrying")
    return tuple(names), params


def key_record(r: Row, values: Values) -> ApiKey:
    """An API key row, without its secret's hash."""
    load_time: Callable[[Any], Any] = values.load_time or unchanged
    return ApiKey(
        id=r["id"], name=r["name"], tenant=r["tenant"], created_at=load_time(r["created_at"]),
        revoked_at=load_time(r["revoked_at"]), last_used_at=load_time(r["last_used_at"]),
    )  # fmt: skip


# --- the base ----------------------------------------------------------------------------------

#: the run statistics statements, each rendered for both {group} columns
RUN_STATEMENTS = ("run_aggregates", "run_recent", "run_running")


class SqlKeys:
    """The API key verbs of both SQL stores, over the primitives `SqlStore` supplies (a class
    of their own so that neither grows past the size of one concept)."""

    values: ClassVar[Values]
    _q: dict[str, str]

    def _reading(self) -> AbstractContextManager[Any]:
        raise NotImplementedError  # SqlStore's

    def _writing(self, atomic: bool = False) -> AbstractContextManager[Any]:
        raise NotImplementedError  # SqlStore's

    def _all(self, conn: Any, name: str, params: Any = None) -> list[Row]:
        raise NotImplementedError  # SqlStore's

    def _stamp(self) -> dict[str, Any]:
        raise NotImplementedError  # SqlStore's

    @staticmethod
    def _run(conn: Any, sql: str, params: Any = None) -> Cursor:
        raise NotImplementedError  # SqlStore's

    def create_key(self, key: NewKey) -> ApiKey:
        params = {"id": key.id, "name": key.name, "tenant": key.tenant,
                  "secret_hash": key.secret_hash, **self._stamp()}  # fmt: skip
        with self._writing() as conn:
            return key_record(self._all(conn, "insert_key", params)[0], self.values)

    def find_key(self, key_id: str) -> StoredKey | None:
        with self._reading() as conn:
            rows = self._all(conn, "get_key", {"id": key_id})
        return StoredKey(key_record(rows[0], self.values), rows[0]["secret_hash"]) if rows else None

    def list_keys(self) -> list[ApiKey]:
        with self._reading() as conn:
            return [key_record(row, self.values) for row in self._all(conn, "list_keys")]

    def revoke_key(self, key_id: str) -> ApiKey:
        with self._writing() as conn:
            rows = self._all(conn, "revoke_key", {"id": key_id, **self._stamp()})
        if not rows:
            raise KeyNotFound(
                f"no API key with id {key_id!r} (`underway keys APP list` shows them)"
            )
        return key_record(rows[0], self.values)

    def touch_key(self, key_id: str) -> None:
        with self._writing() as conn:
            self._run(conn, self._q["touch_key"], {"id": key_id, **self._stamp()})


class SqlStore(SqlKeys, ABC, Generic[C]):
    """The `Store` verbs both SQL backends share, over a backend's connections and values.

    Statements are rendered once, when the store is built: every statement whose only
    fragments are the backend's constants (`{schema}` on PostgreSQL) in `_q`, the run
    statistics per group in `_runs`, list_jobs per combination of filters on first use.
    """

    url: str
    settings: Settings
    concurrent_writes: bool
    #: how ids, times, JSON and flags travel in this backend
    values: ClassVar[Values]
    #: the driver's error for a unique index refusing a row
    duplicate_key_error: ClassVar[type[Exception]]
    #: parameters of a statement that makes a job due again (PostgreSQL: the channel its
    #: NOTIFY wakes the workers on)
    _wake: dict[str, Any]

    def __init__(self, queries: Mapping[str, str], constants: Mapping[str, str]) -> None:
        self._queries = queries
        self._constants = dict(constants)
        self._q: dict[str, str] = {}
        for name, text in queries.items():
            used = placeholders(text)
            if used <= self._constants.keys():
                self._q[name] = render(text, **{k: self._constants[k] for k in used})
        scopes = {False: "", True: self._q["filter_tenant"]}
        self._runs = {
            (group, scoped): {
                name: self._render(name, group=group, tenant=scopes[scoped])
                for name in RUN_STATEMENTS
            }
            for group in ("task", "schedule")
            for scoped in scopes
        }
        self._stats = {
            scoped: (self._render("stats", tenant=text),
                     self._render("stats_pending_views", tenant=text))
            for scoped, text in scopes.items()
        }  # fmt: skip
        self._lists: dict[tuple[str, ...], str] = {}
        self._job = job_mapper(self.values)
        self._wake = {}

    def _render(self, name: str, **fragments: str) -> str:
        """A statement of this dialect with its constants and `fragments` filled in."""
        return render(self._queries[name], **self._constants, **fragments)

    # --- what a backend supplies --------------------------------------------------------------

    @abstractmethod
    def _reading(self) -> AbstractContextManager[C]:
        """A connection for reads, outside any explicit transaction."""

    @abstractmethod
    def _writing(self, atomic: bool = False) -> AbstractContextManager[C]:
        """A connection for writes. `atomic`: every statement in one transaction (SQLite's
        writes always are; PostgreSQL otherwise commits each statement on its own)."""

    @abstractmethod
    def _records(self, cursor: Any) -> list[Row]:
        """The rows of an executed statement (the driver's cursor), by column name."""

    @abstractmethod
    def _stamp(self) -> dict[str, Any]:
        """The clock parameters the control statements take besides their own: SQLite's
        `now` (its clock is this machine's); none on PostgreSQL, whose statements read now()."""

    @abstractmethod
    def _insert_within(self, conn: C, job: NewJob, stamp: dict[str, Any]) -> Job:
        """Insert one job in the caller's transaction (a schedule's slot job)."""

    def _queues_changed(self) -> None:
        """Called after a queue control changed (PostgreSQL re-reads its limited queues)."""

    def _all(self, conn: C, name: str, params: Any = None) -> list[Row]:
        return self._records(self._run(conn, self._q[name], params))

    @staticmethod
    def _run(conn: C, sql: str, params: Any = None) -> Cursor:
        # Without parameters, psycopg sends the text as it is (no %-placeholder parsing).
        return conn.execute(sql) if params is None else conn.execute(sql, params)

    # --- inspection ---------------------------------------------------------------------------

    def get(self, job_id: uuid.UUID) -> Job | None:
        with self._reading() as conn:
            cursor = conn.execute(self._q["get"], {"id": self.values.dump_id(job_id)})
            rows = self._records(cursor)
        return self._job(rows[0]) if rows else None

    def _require(self, job_id: uuid.UUID) -> Job:
        job = self.get(job_id)
        if job is None:
            raise JobNotFound(f"no job with id {job_id}")
        return job

    def list_jobs(self, where: JobFilter, limit: int, cursor: str | None) -> Page:
        names, params = list_filters(where, self.values.dump_time)
        if cursor:
            names += ("cursor",)
            params["cursor"] = self.values.dump_cursor(cursor)
        params.update(self._stamp(), limit=limit + 1)
        with self._reading() as conn:
            rows = self._records(self._run(conn, self._list_sql(names), params))
        jobs = [self._job(row) for row in rows[:limit]]
        return Page(jobs, str(jobs[-1].id) if len(rows) > limit and jobs else None)

    def _list_sql(self, names: tuple[str, ...]) -> str:
        text = self._lists.get(names)
        if text is None:
            filters = "\n".join(self._q[f"filter_{name}"] for name in names)
            text = self._lists[names] = self._render("list_jobs", filters=filters)
        return text

    def stats(self, tenant: str | None = None) -> Stats:
        counts, views = self._stats[tenant is not None]
        scope = {} if tenant is None else {"tenant": tenant}
        with self._reading() as conn:
            rows = self._run(conn, counts, scope or None).fetchall()
            pending = self._run(conn, views, {**self._stamp(), **scope} or None)
            scheduled, retrying = pending.fetchall()[0]
        return build_stats(rows, scheduled, retrying, tenant)

    def run_stats(
        self, tenant: str | None = None
    ) -> tuple[dict[str, RunStats], dict[str, RunStats]]:
        load_time = self.values.load_time or unchanged
        scope = None if tenant is None else {"tenant": tenant}
        out = []
        with self._reading() as conn:
            for group in ("task", "schedule"):
                statements = self._runs[group, tenant is not None]
                aggregates, recent, running = (
                    self._run(conn, statements[name], scope).fetchall() for name in RUN_STATEMENTS
                )
                recent = [(n, status, duration, load_time(started))
                          for n, status, duration, started in recent]  # fmt: skip
                out.append(build_run_stats(aggregates, recent, running))
        return out[0], out[1]

    # --- control ------------------------------------------------------------------------------

    def cancel(self, job_id: uuid.UUID) -> Job:
        params = {"id": self.values.dump_id(job_id), **self._stamp()}
        with self._writing() as conn:
            for name in ("cancel_pending", "request_cancel"):
                rows = self._all(conn, name, params)
                if rows:
                    return self._job(rows[0])
        job = self._require(job_id)
        if job.status is Status.CANCELLED:
            return job
        raise InvalidTransition(f"job {job_id} is already {job.status}; it cannot be cancelled")

    def retry(self, job_id: uuid.UUID) -> Job:
        try:
            with self._writing() as conn:
                params = {"id": self.values.dump_id(job_id), **self._stamp(), **self._wake}
                rows = self._all(conn, "retry", params)
        except self.duplicate_key_error:
            job = self._require(job_id)
            raise DuplicateKey(
                f"job {job_id} cannot be retried: another unfinished job holds its key {job.key!r}"
            ) from None
        if rows:
            return self._job(rows[0])
        job = self._require(job_id)
        raise InvalidTransition(
            f"job {job_id} is {job.status}; only failed or cancelled jobs can be retried"
        )

    def delete_job(self, job_id: uuid.UUID) -> None:
        params = {"id": self.values.dump_id(job_id)}
        with self._writing() as conn:
            cursor = self._run(conn, self._q["delete_finished"], params)
        if cursor.rowcount == 0:
            job = self._require(job_id)
            raise InvalidTransition(
                f"job {job_id} is {job.status}; only finished jobs (completed, failed, "
                "cancelled) can be deleted: cancel it first"
            )

    # --- queues and retention -----------------------------------------------------------------

    def set_queue_paused(self, name: str, paused: bool) -> None:
        with self._writing() as conn:
            self._run(conn, self._q["set_queue_paused"],
                      {"name": name, "paused": paused, **self._stamp()})  # fmt: skip
        self._queues_changed()  # a resumed limited queue counts at once

    def set_queue_concurrency(self, name: str, concurrency: int | None) -> None:
        params = {"name": name, "concurrency": concurrency, **self._stamp()}
        with self._writing() as conn:
            self._run(conn, self._q["set_queue_concurrency"], params)
        self._queues_changed()

    def queues(self) -> list[QueueInfo]:
        with self._reading() as conn:
            controls = self._run(conn, self._q["queues"]).fetchall()
        return build_queues(controls, self.stats().by_queue)

    def prune(self, older_than: float, statuses: Sequence[Status], batch: int = 1000) -> int:
        params = {"statuses": self.values.dump_list([Status(st).value for st in statuses]),
                  "age": older_than, "batch": batch, **self._stamp()}  # fmt: skip

        def delete_batch() -> int:
            with self._writing() as conn:
                return int(self._run(conn, self._q["prune"], params).rowcount)

        return prune_in_batches(delete_batch, batch)

    # --- schedules ----------------------------------------------------------------------------

    def register_schedule(
        self, name: str, task: str, rule: str, anchor: datetime, tenant: str | None = None,
        reanchor: bool = False, tenants: str | None = None) -> ScheduleState:  # fmt: skip
        params = {"name": name, "task": task, "rule": rule, "tenant": tenant, "reanchor": reanchor,
                  "tenants": tenants, "anchor": self.values.dump_time(anchor),
                  **self._stamp()}  # fmt: skip
        with self._writing() as conn:
            return schedule_state(self._all(conn, "register_schedule", params)[0], self.values)

    def schedule_states(self) -> list[ScheduleState]:
        with self._reading() as conn:
            rows = self._all(conn, "schedule_states")
        return [schedule_state(row, self.values) for row in rows]

    def trigger_schedule(self, name: str, job: NewJob) -> Job:
        stamp = self._stamp()
        with self._writing(atomic=True) as conn:
            counted = self._run(conn, self._q["count_schedule_run"], {"name": name, **stamp})
            if counted.rowcount == 0:
                raise ScheduleNotFound(f"no schedule named {name!r}")
            return self._insert_within(conn, job, stamp)

    def set_schedule_paused(self, name: str, paused: bool) -> None:
        with self._writing() as conn:
            params = {"name": name, "paused": paused, **self._stamp()}
            if self._run(conn, self._q["set_schedule_paused"], params).rowcount == 0:
                raise ScheduleNotFound(f"no schedule named {name!r}")

    # --- callbacks ----------------------------------------------------------------------------

    def claim_deliveries(self, sender: str, limit: int, lease_seconds: float) -> list[DueDelivery]:
        if limit <= 0:
            return []
        stamp = self._stamp()
        with self._reading() as conn:
            if not self._all(conn, "deliveries_due", stamp or None):
                return []  # nothing due: no lock taken
        params = {"sender": sender, "lease": lease_seconds, "limit": limit, **stamp}
        with self._writing() as conn:
            rows = self._all(conn, "claim_deliveries", params)
        return [due_delivery(row, self.values) for row in rows]

    def record_delivery(self, result: DeliveryResult) -> bool:
        stamp = self._stamp()
        outcome = {"status_code": result.status_code, "error": result.error, **stamp}
        params = {"id": result.delivery_id, "token": result.token, "status": result.status.value,
                  "retry_in": result.retry_in, **outcome}  # fmt: skip
        with self._writing(atomic=True) as conn:
            rows = self._all(conn, "record_delivery", params)
            if not rows:
                return False  # the lease ran out and another sender has it, or the job is gone
            attempt = {"id": result.delivery_id, "number": rows[0]["attempts"],
                       "duration": result.duration, **outcome}  # fmt: skip
            self._run(conn, self._q["insert_delivery_attempt"], attempt)
        return True

    def deliveries(self, job_id: uuid.UUID) -> list[Delivery]:
        params = {"job_id": self.values.dump_id(job_id)}
        with self._reading() as conn:
            rows = self._all(conn, "job_deliveries", params)
            attempts = self._all(conn, "job_delivery_attempts", params) if rows else []
        return build_deliveries(rows, attempts, self.values)
