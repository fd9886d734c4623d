"""The API's request and response bodies as pydantic models: they validate what clients send
and describe in /openapi.json what they get back. Responses are written by `jobjson` and
friends; these models only document them, so the JSON is exactly the shape DESIGN.md fixes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from ..model import DeliveryStatus, Status
from ..tasks import INT32_MAX, MAX_DELAY_SECONDS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobErrorOut(BaseModel):
    type: str
    message: str
    traceback: str


class JobOut(BaseModel):
    """A job: times are ISO 8601 with their offset."""

    id: uuid.UUID
    task: str
    title: str
    status: Status
    attempt: int
    max_attempts: int
    queue: str
    priority: int
    tenant: str | None
    args: dict[str, Any]
    progress: float | None
    status_message: str | None
    payload: Any
    result: Any
    error: JobErrorOut | None
    key: str | None
    callback_url: str | None
    run_at: datetime
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    updated_at: datetime | None
    cancel_requested: bool
    slot: datetime | None = Field(
        description="the schedule slot the job was fired for; null unless a schedule fired it "
        "for a slot (a triggered run has none)"
    )


class PageOut(BaseModel):
    """One page of jobs, newest first; pass `next_cursor` as `cursor` for the next page."""

    jobs: list[JobOut]
    next_cursor: str | None


class EnqueueIn(_Strict):
    """Run a registered task with keyword arguments given as JSON."""

    task: str = Field(description="the task's registered name, e.g. myproject.jobs.classify")
    args: dict[str, Any] = Field(default_factory=dict, description="keyword arguments")
    queue: str | None = None
    priority: int | None = Field(None, ge=-INT32_MAX - 1, le=INT32_MAX)
    delay: float | None = Field(None, ge=0, le=MAX_DELAY_SECONDS, description="seconds")
    run_at: AwareDatetime | None = None
    key: str | None = Field(None, description="unique key: one unfinished job per key")
    tenant: str | None = Field(None, description="admin keys only; a tenant key's own tenant")
    callback_url: str | None = None
    title: str | None = None
    max_attempts: int | None = Field(None, ge=1, le=INT32_MAX)
    id: uuid.UUID | None = Field(
        None, description="the job's id, chosen by the caller; 409 when a job already has it"
    )


class ScheduleIn(_Strict):
    """A stored schedule's whole definition: every scheduler fires it, also one whose code
    never declared it (its task must be registered there). Putting it again updates it; the
    slots already handled never fire again."""

    task: str = Field(description="the task's registered name")
    every: float | None = Field(
        None, gt=0, le=MAX_DELAY_SECONDS, description="seconds between slots (or cron)"
    )
    cron: str | None = Field(None, description="a cron expression in `timezone` (or every)")
    timezone: str = "UTC"
    initial_delay: float = Field(
        0.0, ge=0, le=MAX_DELAY_SECONDS, description="seconds before the first slot"
    )
    catch_up: Literal["latest", "all", "skip"] = "latest"
    max_catch_up: int = Field(100, ge=1, le=INT32_MAX)
    misfire_grace: float = Field(60.0, ge=0, le=MAX_DELAY_SECONDS)
    overlap: Literal["allow", "skip", "wait"] = "allow"
    args: dict[str, Any] = Field(default_factory=dict, description="the task's arguments")
    tenant: str | None = Field(None, description="the tenant its jobs carry")
    tenants: list[str] | None = Field(
        None, description="run once per tenant at each slot (instead of tenant)"
    )


class DeadLettersIn(_Strict):
    """Which failed jobs to retry or delete; every field narrows the selection."""

    task: str | None = None
    queue: str | None = None
    tenant: str | None = None
    created_after: AwareDatetime | None = None
    created_before: AwareDatetime | None = None


class CountOut(BaseModel):
    count: int


class ConcurrencyIn(_Strict):
    concurrency: int | None = Field(ge=0, le=INT32_MAX, description="null removes the limit")


class QueueOut(BaseModel):
    name: str
    paused: bool
    concurrency: int | None
    counts: dict[str, int]


class RunStatsOut(BaseModel):
    runs: int
    failures: int
    last_run: datetime | None
    last_status: str | None
    last_duration: float | None
    average_duration: float | None
    consecutive_failures: int
    running: int
    state: str


class ScheduleOut(BaseModel):
    name: str
    task: str
    rule: str
    paused: bool
    next_run: datetime | None
    last_run: datetime | None
    run_count: int
    registered: bool
    tenant: str | None
    #: a schedule run once per tenant: the tenants each slot fires for
    tenants: list[str] | None = None
    #: a schedule run once per tenant: the function listing its tenants at each slot
    tenants_from: str | None = None
    stored: bool
    schedulers_alive: int | None
    state: str
    stats: RunStatsOut


class StatsOut(BaseModel):
    total: int
    by_status: dict[str, int]
    by_task: dict[str, dict[str, int]]
    by_queue: dict[str, dict[str, int]]
    scheduled: int
    retrying: int
    tasks: dict[str, RunStatsOut]
    schedules: dict[str, RunStatsOut]


class MinuteOut(BaseModel):
    at: datetime
    completed: int
    failed: int
    cancelled: int


class StatsHistoryOut(BaseModel):
    minutes: list[MinuteOut]


class TaskOut(BaseModel):
    name: str
    title: str
    queue: str
    priority: int
    max_attempts: int
    timeout: float | None
    is_async: bool
    doc: str | None
    args_schema: dict[str, Any] = Field(description="JSON Schema of the keyword arguments")


class AttemptOut(BaseModel):
    """One run of the job (`kind` "attempt"); `outcome` is null while it runs."""

    kind: Literal["attempt"]
    number: int
    worker_id: str | None
    started_at: datetime
    ended_at: datetime | None
    outcome: str | None
    error: JobErrorOut | None
    duration: float | None


class DeliveryAttemptOut(BaseModel):
    number: int
    at: datetime
    status_code: int | None
    error: str | None
    duration: float


class DeliveryOut(BaseModel):
    """A signed completion callback of the job (`kind` "delivery"), with its attempts; `id` is
    its `webhook-id`."""

    kind: Literal["delivery"]
    id: str
    job_id: uuid.UUID
    type: str
    url: str
    status: DeliveryStatus
    created_at: datetime
    next_at: datetime | None
    delivered_at: datetime | None
    last_error: str | None
    last_status_code: int | None
    attempts: list[DeliveryAttemptOut]


#: an entry of a job's history: an attempt to run it, or a callback delivery
HistoryOut = Annotated[AttemptOut | DeliveryOut, Field(discriminator="kind")]


class WorkerOut(BaseModel):
    """A live worker process; `queues` null means every queue."""

    id: str
    host: str
    pid: int
    queues: list[str] | None
    concurrency: int
    started_at: datetime
    last_beat_at: datetime
    running: int
    clock_skew: float | None = Field(
        None,
        description="seconds its clock was ahead of the store's at its last beat (behind: "
        "negative); null on SQLite, whose clock is each process's own",
    )


class Problem(BaseModel):
    """An error: what went wrong and what to do."""

    detail: Any
