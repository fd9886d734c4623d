"""How an attempt ends, decided by pure functions: the task's return value or error, or the
reason the worker stopped it, becomes an `Outcome`. No I/O, no clock, no logging: the attempt
logs what these return, and unit tests call them directly."""

from __future__ import annotations

import enum
import traceback
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from .. import encoding
from ..errors import Cancel, InvalidArguments, PermanentError, Retry
from ..model import Job, JobError, Status
from ..stores.messages import Claimed, Outcome
from ..tasks import Task


class StopReason(enum.StrEnum):
    """Why a running job is being stopped from outside its code (`ctx.cancel_reason`)."""

    CANCEL = "cancel"  # someone called app.cancel
    SHUTDOWN = "shutdown"  # the worker is stopping: hand the job back
    LOST = "lost"  # our lease was taken back: another attempt owns the job now
    TIMEOUT = "timeout"  # the task ran past its timeout


class NotRunnable(Exception):
    """The job cannot run here at all (unknown task, arguments that no longer fit)."""


def completed(claimed: Claimed, task: Task[Any, Any], result: Any) -> Outcome:
    """The task returned `result`; a value that is not JSON makes the job unrunnable."""
    try:
        result_json = encoding.dumps(result, "the return value")
    except InvalidArguments as exc:
        raise NotRunnable(f"task {task.name} returned a value that is not JSON: {exc}") from None
    return Outcome.completed(claimed.job.id, claimed.token, result_json)


def stopped(claimed: Claimed, reason: StopReason | None) -> Outcome | None:
    """The worker stopped the job: a cancel ends it, a shutdown hands it back without spending
    the attempt, a lost lease writes nothing (the newer attempt owns the job). No reason means
    the event loop itself is going away: hand back. A timeout is not decided here: it is the
    task's failure (see `failure`), and passing it raises ValueError."""
    job, token = claimed.job, claimed.token
    if reason is StopReason.TIMEOUT:
        # A timeout is the task's own failure, with the task's timeout in its message.
        raise ValueError("a timeout is decided by failure(), not stopped()")
    if reason is StopReason.CANCEL:
        return Outcome.cancelled(job.id, token, JobError("cancelled while running", "Cancelled"))
    if reason is StopReason.LOST:
        return None
    return Outcome.handed_back(job.id, token)


def failure(claimed: Claimed, task: Task[Any, Any] | None, exc: BaseException) -> Outcome:
    """The task raised `exc` (or could not run): retry later while attempts remain and the
    error is retryable, else fail for good; `Cancel` cancels."""
    job, token = claimed.job, claimed.token
    if isinstance(exc, Cancel):
        return Outcome.cancelled(job.id, token, JobError(encoding.clean_text(exc.reason), "Cancel"))
    error = describe_error(task, exc)
    if retryable(task, exc) and job.attempt < job.max_attempts:
        assert task is not None  # retryable() is False without a task
        return Outcome.retry_later(job.id, token, error, retry_delay(task, job, exc))
    return Outcome.failed(job.id, token, error)


def retryable(task: Task[Any, Any] | None, exc: BaseException) -> bool:
    """Whether another attempt could help: not for an unknown task, a `PermanentError`, an
    unrunnable job, or an error of the task's `no_retry_on` types."""
    if task is None or isinstance(exc, (PermanentError, NotRunnable)):
        return False
    return not (task.no_retry_on and isinstance(exc, task.no_retry_on))


def retry_delay(task: Task[Any, Any], job: Job, exc: BaseException) -> float:
    """`Retry(delay=...)` wins over the task's backoff policy (whose jitter, if on, is the
    only randomness here)."""
    if isinstance(exc, Retry) and exc.delay is not None:
        return exc.delay
    return task.retry.delay(job.attempt)


def describe_error(task: Task[Any, Any] | None, exc: BaseException) -> JobError:
    if isinstance(exc, TimeoutError) and task is not None and task.timeout:
        message = f"timed out after {task.timeout:g} s (the task's timeout)"
        return JobError(message, "Timeout", format_traceback(exc))
    return JobError(describe(exc), type(exc).__name__, format_traceback(exc))


def describe(exc: BaseException) -> str:
    text = encoding.clean_text(str(exc))
    if isinstance(exc, NotRunnable):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def format_traceback(exc: BaseException) -> str:
    return encoding.clean_text("".join(traceback.format_exception(exc))[-20_000:])


def refused(outcome: Outcome, reason: str) -> Outcome:
    """What to write instead of an outcome the store refused: a failure that says why."""
    message = f"the store refused this job's outcome ({outcome.status}): {reason[:2000]}"
    return Outcome.failed(outcome.job_id, outcome.token, JobError(message, "OutcomeNotStored"))


def finished_snapshot(job: Job, outcome: Outcome, now: datetime) -> Job:
    """The job as the store now holds it after `outcome`, built locally so publishing costs no
    query."""
    pending = outcome.status is Status.PENDING
    changes: dict[str, Any] = {
        "status": outcome.status,
        "result": encoding.loads(outcome.result_json),
        "attempt": job.attempt if outcome.spend_attempt else job.attempt - 1,
        "completed_at": None if pending else now,
    }
    if outcome.error is not None:
        changes["error"] = outcome.error
    if pending:
        changes["run_at"] = now + timedelta(seconds=outcome.retry_in)
        changes["started_at"] = None
    if outcome.report_dirty:
        job = with_report(job, outcome.progress, outcome.status_message, outcome.payload_json)
    return replace(job, **changes)


def with_report(
    job: Job, progress: float | None, status_message: str | None, payload_json: str | None
) -> Job:
    """`job` as the store holds it after a report: a payload left unset keeps the old one."""
    changes: dict[str, Any] = {"progress": progress, "status_message": status_message}
    if payload_json is not None:
        changes["payload"] = encoding.loads(payload_json)
    return replace(job, **changes)
