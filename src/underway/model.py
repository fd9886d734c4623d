"""The job record, its five statuses and the one table of allowed transitions."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

JSON = Any  # a value that survives json.dumps/json.loads unchanged


class Status(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})
UNFINISHED = frozenset({Status.PENDING, Status.RUNNING})

# Every change of status a job may make. A retry wait, a graceful hand-back and a crash rescue
# are all running -> pending; `failed` is final until a person asks for `retry`.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.RUNNING, Status.CANCELLED}),
    Status.RUNNING: frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.PENDING}),
    Status.COMPLETED: frozenset(),
    Status.FAILED: frozenset({Status.PENDING}),
    Status.CANCELLED: frozenset({Status.PENDING}),
}


def can_transition(source: Status, target: Status) -> bool:
    return target in TRANSITIONS[source]


class View(enum.StrEnum):
    """Filters over `pending` that the API, CLI and dashboard offer."""

    SCHEDULED = "scheduled"  # pending with run_at in the future
    RETRYING = "retrying"  # pending after at least one attempt


@dataclass(frozen=True, slots=True)
class JobError:
    """Why the last attempt failed."""

    message: str
    type: str = ""
    traceback: str = ""


class UnreadableArgs(dict[str, "JSON"]):
    """A job's stored arguments that are no JSON at all (a row another program wrote, or a
    damaged file): empty, with the stored text and why it could not be read. The job is
    still listed and shown; a worker fails it NotRunnable at once, with that reason."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__()
        self.text = text
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Job:
    """A snapshot of one job. It never changes; ask the app for a fresh one."""

    id: uuid.UUID
    task: str
    args: dict[str, JSON]
    queue: str
    priority: int
    status: Status
    attempt: int
    max_attempts: int
    run_at: datetime
    created_at: datetime
    title: str = ""
    progress: float | None = None
    status_message: str | None = None
    payload: JSON = None
    result: JSON = None
    error: JobError | None = None
    tenant: str | None = None
    callback_url: str | None = None
    key: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    cancel_requested: bool = False
    rescues: int = 0
    schedule: str | None = None  # the schedule that fired this job, if any
    #: when the store last changed the job; never earlier than in an older snapshot of it
    updated_at: datetime | None = None
    #: The schedule slot this job runs for (the time it was due by its rule, also for a slot
    #: fired late after downtime); None for a job not fired for a slot, a triggered run too.
    slot: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


@dataclass(frozen=True, slots=True)
class Page:
    """One page of jobs, newest first; pass `next_cursor` back to get the next page."""

    jobs: list[Job]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class RunStats:
    """How the finished runs of one task or schedule went (over the jobs still retained)."""

    runs: int = 0  # finished attempts that ran: completed + failed jobs
    failures: int = 0
    last_run: datetime | None = None  # when the latest finished run started
    last_status: str | None = None
    last_duration: float | None = None  # seconds
    average_duration: float | None = None
    consecutive_failures: int = 0  # failed runs in a row, counted back from the latest (max 10)
    running: int = 0

    @property
    def state(self) -> str:
        """ "running", "failing" (its latest run failed), "ok", or "idle" (never ran)."""
        if self.running:
            return "running"
        if self.last_status is None:
            return "idle"
        return "failing" if self.consecutive_failures else "ok"


@dataclass(frozen=True, slots=True)
class Stats:
    """Counts of jobs by status, overall, per task, per queue and per tenant; run statistics per
    task and per schedule. `tenant` names the one tenant every count is scoped to, if any."""

    by_status: dict[str, int]
    by_task: dict[str, dict[str, int]]
    by_queue: dict[str, dict[str, int]]
    #: jobs that carry a tenant, by tenant (jobs without one are in the other counts only)
    by_tenant: dict[str, dict[str, int]] = field(default_factory=dict)
    tenant: str | None = None
    scheduled: int = 0
    retrying: int = 0
    tasks: dict[str, RunStats] = field(default_factory=dict)
    schedules: dict[str, RunStats] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


#: how many minutes of finishes the store keeps for `App.stats_history` (a day)
HISTORY_MINUTES = 1440


@dataclass(frozen=True, slots=True)
class MinuteStats:
    """How many jobs reached each final state in one minute (`at`, its start, UTC), counted
    when they finished: a later retry or prune takes nothing back."""

    at: datetime
    completed: int = 0
    failed: int = 0
    cancelled: int = 0


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """A queue as every worker sees it: its controls and its jobs by status."""

    name: str
    paused: bool = False
    concurrency: int | None = None  # most jobs running at once across all workers
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    """A schedule as `app.list_schedules()` and `underway schedules APP list` show it."""

    name: str
    task: str
    rule: str
    paused: bool
    next_run: datetime | None
    last_run: datetime | None  # the latest slot fired (or dropped by the catch-up policy)
    run_count: int
    stats: RunStats
    registered: bool = True  # False: known to the store, but not defined in this app
    tenant: str | None = None  # the tenant the schedule's jobs carry
    stored: bool = False  # put at run time (its definition is in the store), not in code
    #: run once per tenant: the tenants each slot fires a job for
    tenants: tuple[str, ...] | None = None
    #: run once per tenant: the function that lists the tenants at each slot (its name)
    tenants_from: str | None = None
    #: schedulers alive now, across all processes (None: not asked)
    schedulers_alive: int | None = None

    @property
    def state(self) -> str:
        """ "paused"; "running" or "failing" (its runs); "no scheduler" where it would say "ok"
        or "idle" but no scheduler is alive to fire it; else "ok" or "idle"."""
        if self.paused:
            return "paused"
        runs = self.stats.state
        return "no scheduler" if self.schedulers_alive == 0 and runs in ("ok", "idle") else runs


class DeliveryStatus(enum.StrEnum):
    """Where a completion callback stands: still owed (`pending`, maybe waiting for its next
    attempt), `delivered` (a 2xx answer), or `failed` for good (attempts spent, or refused)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One POST of a delivery and what came of it."""

    number: int
    at: datetime
    status_code: int | None  # the receiver's answer; None when there was none
    error: str | None  # why the attempt did not succeed; None when it did
    duration: float  # seconds


@dataclass(frozen=True, slots=True)
class Delivery:
    """A completion callback a job owes its `callback_url`: one per final state it reached.
    `id` is the Standard Webhooks message id (`webhook-id`), the same in every attempt."""

    id: str
    job_id: uuid.UUID
    type: str  # job.completed | job.failed | job.cancelled
    url: str
    status: DeliveryStatus
    created_at: datetime
    next_at: datetime | None  # when the next attempt is due (pending only)
    delivered_at: datetime | None = None
    last_error: str | None = None
    last_status_code: int | None = None
    attempts: tuple[DeliveryAttempt, ...] = ()


class ChangeKind(enum.StrEnum):
    """What a change did to a job (`Change.kind`)."""

    ENQUEUED = "enqueued"
    STARTED = "started"
    REPORTED = "reported"  # progress, status message or payload of a running job
    REQUEUED = "requeued"  # running -> pending: a retry wait, a hand-back or a crash rescue
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    CANCEL_REQUESTED = "cancel_requested"
    RETRIED = "retried"  # failed or cancelled -> pending, asked for by a person


@dataclass(frozen=True, slots=True)
class Change:
    """One change any process made to a job, as `app.watch()` yields it. `job` is the job as
    it was right after the change; pass `cursor` as `since=` to resume after it."""

    cursor: str
    kind: ChangeKind
    at: datetime
    job: Job


@dataclass(frozen=True, slots=True)
class AttemptInfo:
    """One run of a job: who ran it, when, and how it ended (`outcome` is None while it runs:
    "completed", "failed", "cancelled", "retry", "rescued" or "handed_back")."""

    job_id: uuid.UUID
    number: int
    worker_id: str | None
    started_at: datetime
    ended_at: datetime | None = None
    outcome: str | None = None
    error: JobError | None = None
    duration: float | None = None  # seconds


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A live worker process, as `app.workers()` lists it."""

    id: str
    host: str
    pid: int
    queues: tuple[str, ...] | None  # None: every queue
    concurrency: int
    started_at: datetime
    last_beat_at: datetime
    running: int  # jobs it runs now
    #: seconds its clock was ahead of the store's at its last beat (behind: negative), within
    #: half a round trip; None on SQLite, whose clock is each process's own
    clock_skew: float | None = None
