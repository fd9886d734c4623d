"""Every message that crosses the Store protocol, in one place: what producers, workers and
schedulers hand to a store, and what it hands back besides public `Job` records."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal, Protocol

from ..errors import InvalidArguments, QuotaExceeded
from ..model import JSON, DeliveryStatus, Job, JobError, Status, View


@dataclass(slots=True)  # not frozen: it is internal, and frozen __init__ costs bulk enqueue
class NewJob:
    """An enqueue request, validated and encoded, ready for the store."""

    id: uuid.UUID
    task: str
    title: str
    args: dict[str, JSON]
    args_json: str
    queue: str
    priority: int
    max_attempts: int
    delay: float  # seconds from the store's now; ignored when run_at is given
    run_at: datetime | None
    tenant: str | None
    callback_url: str | None
    key: str | None
    status_message: str | None
    schedule: str | None = None
    slot: datetime | None = None  # the schedule slot it is fired for
    id_chosen: bool = False  # the caller gave the id (options(id=...)): it may exist already

    def pending(self, run_at: datetime, created_at: datetime) -> Job:
        """The job this request became once inserted, built here so no query reads it back."""
        return Job(
            id=self.id,
            task=self.task,
            title=self.title,
            args=self.args,
            queue=self.queue,
            priority=self.priority,
            status=Status.PENDING,
            attempt=0,
            max_attempts=self.max_attempts,
            run_at=run_at,
            created_at=created_at,
            status_message=self.status_message,
            tenant=self.tenant,
            callback_url=self.callback_url,
            key=self.key,
            schedule=self.schedule,
            slot=self.slot,
            updated_at=created_at,
        )


@dataclass(frozen=True, slots=True)
class QuotaDemand:
    """What one enqueue call takes from one tenant's token bucket: `count` tokens from a
    bucket of `burst` that refills at `per_second` (underway/quotas.py computes these)."""

    tenant: str
    count: int
    per_second: float
    burst: int

    def refused(self, tokens: float) -> QuotaExceeded:
        """The error for this demand when the bucket holds only `tokens`."""
        return QuotaExceeded.refused(self.tenant, self.count, self.per_second, self.burst, tokens)

    def params(self) -> dict[str, object]:
        """The parameters of both stores' `take_tokens` and `bucket_tokens` statements."""
        return {
            "tenant": self.tenant, "count": float(self.count),
            "rate": float(self.per_second), "burst": float(self.burst),
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class Claimed:
    """A job a worker holds a lease on; `token` must match for any outcome to land."""

    job: Job
    token: str


@dataclass(frozen=True, slots=True)
class Lease:
    job_id: uuid.UUID
    token: str


@dataclass(frozen=True, slots=True)
class HeartbeatResult:
    cancel_requested: frozenset[uuid.UUID]  # leases still held whose job someone cancelled
    lost: frozenset[uuid.UUID]  # leases taken back (expired and rescued, or job deleted)


class Ending(enum.StrEnum):
    """The five ways an attempt can end."""

    COMPLETED = "completed"
    FAILED = "failed"  # final: the dead letters
    CANCELLED = "cancelled"
    RETRY = "retry"  # pending again after a delay; the attempt counts
    HANDED_BACK = "handed_back"  # pending again at once; the attempt does not count


_STATUS = {
    Ending.COMPLETED: Status.COMPLETED,
    Ending.FAILED: Status.FAILED,
    Ending.CANCELLED: Status.CANCELLED,
    Ending.RETRY: Status.PENDING,
    Ending.HANDED_BACK: Status.PENDING,
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt ended, as the worker reports it to the store. Build one with the named
    constructors (`Outcome.completed(...)`, `.failed`, `.retry_later`, `.handed_back`,
    `.cancelled`); the fields they leave out cannot be set for that ending.

    Progress, status message and payload carry the task's last reports (`with_reports`), so
    they land together with the outcome even if the periodic flush never ran.
    """

    job_id: uuid.UUID
    token: str
    ending: Ending
    result_json: str | None = None
    error: JobError | None = None
    retry_in: float = 0.0  # RETRY: seconds until the next attempt
    progress: float | None = None
    status_message: str | None = None
    payload_json: str | None = None
    report_dirty: bool = False

    def __post_init__(self) -> None:
        if self.result_json is not None and self.ending is not Ending.COMPLETED:
            raise ValueError(f"a {self.ending} outcome carries no result")
        if self.error is None and self.ending in (Ending.FAILED, Ending.RETRY):
            raise ValueError(f"a {self.ending} outcome needs the error that caused it")
        if self.retry_in and self.ending is not Ending.RETRY:
            raise ValueError(f"only a retry waits; a {self.ending} outcome has no retry_in")
        if self.retry_in < 0:
            raise ValueError("retry_in must be >= 0 seconds")

    @classmethod
    def completed(cls, job_id: uuid.UUID, token: str, result_json: str) -> Outcome:
        return cls(job_id, token, Ending.COMPLETED, result_json=result_json)

    @classmethod
    def failed(cls, job_id: uuid.UUID, token: str, error: JobError) -> Outcome:
        return cls(job_id, token, Ending.FAILED, error=error)

    @classmethod
    def retry_later(cls, job_id: uuid.UUID, token: str, error: JobError, delay: float) -> Outcome:
        return cls(job_id, token, Ending.RETRY, error=error, retry_in=max(float(delay), 0.0))

    @classmethod
    def handed_back(cls, job_id: uuid.UUID, token: str) -> Outcome:
        return cls(job_id, token, Ending.HANDED_BACK)

    @classmethod
    def cancelled(cls, job_id: uuid.UUID, token: str, error: JobError) -> Outcome:
        return cls(job_id, token, Ending.CANCELLED, error=error)

    def with_reports(
        self, progress: float | None, status_message: str | None, payload_json: str | None
    ) -> Outcome:
        """The same outcome, also writing the task's latest reports."""
        return replace(
            self,
            progress=progress,
            status_message=status_message,
            payload_json=payload_json,
            report_dirty=True,
        )

    @property
    def status(self) -> Status:
        """The status the job takes (a cancel requested meanwhile turns pending to cancelled)."""
        return _STATUS[self.ending]

    @property
    def spend_attempt(self) -> bool:
        return self.ending is not Ending.HANDED_BACK


@dataclass(frozen=True, slots=True)
class Report:
    """A coalesced progress/status/payload write for a running job."""

    job_id: uuid.UUID
    token: str
    progress: float | None
    status_message: str | None
    payload_json: str | None


@dataclass(frozen=True, slots=True)
class JobFilter:
    status: Status | None = None
    view: View | None = None
    task: str | None = None
    queue: str | None = None
    tenant: str | None = None
    key: str | None = None
    created_after: datetime | None = None  # created at or after
    created_before: datetime | None = None  # created strictly before

    def __post_init__(self) -> None:
        for name, time in (("created_after", self.created_after),
                           ("created_before", self.created_before)):  # fmt: skip
            if time is not None and time.utcoffset() is None:
                raise InvalidArguments(
                    f"{name} must be timezone-aware, e.g. datetime(..., tzinfo=timezone.utc)"
                )


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """What the store keeps about a schedule, shared by every scheduler."""

    name: str
    task: str
    rule: str
    anchor: datetime
    last_slot: datetime | None
    next_run: datetime | None
    paused: bool
    run_count: int
    tenant: str | None = None  # the tenant the schedule's jobs carry
    #: a schedule put at run time: its definition (JSON); None: declared in code
    definition: str | None = None
    #: a schedule run once per tenant: a JSON list of them, or a JSON string naming the
    #: function that lists them (None: not run per tenant)
    tenants: str | None = None


#: The bounds (seconds) of the duration and pickup histograms. Migration 0006's triggers
#: hard-code them as the `_le_NN` columns; changing them takes a migration.
HISTOGRAM_BOUNDS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Histogram:
    """Observations in seconds: `buckets[i]` counts those <= HISTOGRAM_BOUNDS[i] (cumulative,
    as Prometheus wants them); `count` counts them all."""

    count: int = 0
    sum: float = 0.0
    buckets: tuple[int, ...] = (0,) * len(HISTOGRAM_BOUNDS)


@dataclass(frozen=True, slots=True)
class DeliveryCounts:
    """Completion callbacks: deliveries that ended delivered or failed for good and attempts
    made (counted as they happened, never lower later), and deliveries pending now."""

    delivered: int = 0
    failed: int = 0
    attempts: int = 0
    pending: int = 0


@dataclass(frozen=True, slots=True)
class TaskCounters:
    """What happened to the jobs of one task in one queue since the store was made. Counted by
    the store as it happens, so they never go down, not even when jobs are pruned."""

    task: str
    queue: str
    enqueued: int = 0
    completed: int = 0
    failed: int = 0
    retried: int = 0  # error retries and retries by a person
    cancelled: int = 0
    rescued: int = 0  # leases that expired (the worker died) and were taken back
    duration: Histogram = Histogram()  # attempts that ended by themselves: start to end
    pickup: Histogram = Histogram()  # every attempt that ended: due (run_at) to start


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A delivery a sender holds a lease on; `token` must match for its result to land."""

    id: str  # the Standard Webhooks message id
    job_id: uuid.UUID
    type: str
    url: str
    attempts: int  # attempts made before this one
    created_at: datetime
    token: str


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """One attempt of a delivery, as the sender records it, and the status it leaves:
    delivered, pending again in `retry_in` seconds, or failed for good."""

    delivery_id: str
    token: str
    status: DeliveryStatus
    duration: float
    status_code: int | None = None
    error: str | None = None
    retry_in: float = 0.0


@dataclass(frozen=True, slots=True)
class ChangeFilter:
    """Which jobs' changes a watcher wants; None matches any."""

    job_id: uuid.UUID | None = None
    task: str | None = None
    queue: str | None = None
    tenant: str | None = None


@dataclass(frozen=True, slots=True)
class HorizonHolder:
    """Something of the store's server that keeps it from removing dead rows: a transaction
    or a prepared transaction open for `seconds`, or a replication slot (its age unknown)."""

    kind: Literal["transaction", "prepared", "slot"]
    name: str  # the backend's pid, the prepared transaction's gid, the slot's name
    seconds: float | None
    detail: str  # state, user and application, and the statement it runs or ran last


@dataclass(frozen=True, slots=True)
class WorkerBeat:
    """What a worker says of itself at each heartbeat; `lease` is how long it counts as alive
    without another."""

    id: str
    host: str
    pid: int
    queues: tuple[str, ...] | None
    concurrency: int
    lease: float


#: what a store's notices are about: the change feed, or cancel requests of running jobs
Topic = Literal["changes", "cancels"]


class Listener(Protocol):
    """A store's notices on one topic, read by one thread."""

    def wait(self, timeout: float) -> list[str] | None:
        """Block up to `timeout`: the notices' payloads ([] when none came in time), or None
        when the store cannot tell what changed, or may have missed notices: look anyway."""

    def close(self) -> None: ...
