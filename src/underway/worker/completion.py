"""What the worker does after a task that called `ctx.complete_in`: it looks whether the
task's own transaction completed the job, so it writes nothing more when it did
(docs/decisions/0019-complete-in-transaction.md)."""

from __future__ import annotations

import logging

from ..context import job_logger
from ..model import Job, Status
from ..stores import Store
from ..stores.messages import Outcome
from ..threads import StoreThreads
from .attempt import Attempt

log = logging.getLogger("underway.worker")


async def completed_by_task(
    store: Store, threads: StoreThreads, attempt: Attempt, outcome: Outcome | None
) -> Job | None:
    """The job, if the task's own transaction completed it in this attempt and committed;
    None when it rolled back (or the store cannot say): the normal path then applies, and its
    lease-guarded write cannot complete the job a second time. `outcome` is the task's own,
    logged when it was an error that the completion overrides."""
    try:
        job = await threads.call(store.get, attempt.job.id)
    except Exception as exc:
        job_logger(attempt.job, log).warning("could not read the job back: %s", exc)
        return None
    if job is None or job.status is not Status.COMPLETED or job.attempt != attempt.job.attempt:
        return None
    if outcome is not None and outcome.error is not None:
        job_logger(job, log).warning(
            "the task failed after its transaction completed the job, which stays completed: %s",
            outcome.error.message,
        )
    return job
