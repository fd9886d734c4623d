"""The pages about the fleet: schedules, queues and workers. They are shared by every tenant,
so, as in the JSON API, only an admin key sees them; a tenant's key gets a page saying so."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from ... import health
from ...app import App
from ...model import Job, ScheduleInfo, Status
from ..access import AppDep
from .rendering import mark_stream_start, page
from .session import Viewer, viewer

router = APIRouter(include_in_schema=False, dependencies=[Depends(mark_stream_start)])
ViewerDep = Annotated[Viewer, Depends(viewer)]


@dataclass(frozen=True, slots=True)
class SchedulerState:
    """Whether a scheduler fires the schedules: from the schedulers' beats in the store, and
    from the slots (a slot a minute overdue means none fires it)."""

    ok: bool
    text: str


def scheduler_state(schedules: list[ScheduleInfo], found: health.Health) -> SchedulerState:
    if any(s.schedulers_alive == 0 for s in schedules):
        return SchedulerState(
            False,
            "no scheduler is alive: every worker runs one unless started with --no-scheduler; "
            "or run `underway scheduler APP`",
        )
    late = next((c for c in found.checks if c.name == "schedules" and not c.ok), None)
    if late is not None:
        return SchedulerState(False, late.reason)
    if any(s.registered and not s.paused and s.next_run is None for s in schedules):
        return SchedulerState(
            False,
            "no scheduler has started yet: every worker runs one unless started with "
            "--no-scheduler; or run `underway scheduler APP`",
        )
    return SchedulerState(True, "every schedule is on time: a scheduler is firing them")


def _forbidden(request: Request, you: Viewer, what: str) -> Response:
    return page(request, you, "admin_only.html", status_code=403, what=what)


@router.get("/schedules")
async def schedules(request: Request, app: AppDep, you: ViewerDep) -> Response:
    if not you.scope.admin:
        return _forbidden(request, you, "Schedules")
    listed = await app.list_schedules_async()
    state = scheduler_state(listed, await health.check_async(app)) if listed else None
    return page(request, you, "schedules.html", schedules=listed, scheduler=state)


@router.get("/queues")
async def queues(request: Request, app: AppDep, you: ViewerDep) -> Response:
    if not you.scope.admin:
        return _forbidden(request, you, "Queues")
    return page(request, you, "queues.html", queues=await app.queues_async())


#: running jobs the workers page lists with the worker that runs each (more are only counted)
RUNNING_SHOWN = 200


async def running_by_worker(app: App) -> dict[str, list[Job]]:
    """The running jobs, by the worker that runs each (its latest attempt's worker), read
    through the same calls as `GET /api/v1/jobs?status=running` and `.../attempts`."""
    running = (await app.list_jobs_async(status=Status.RUNNING, limit=RUNNING_SHOWN)).jobs
    histories = await asyncio.gather(*(app.attempts_async(job.id) for job in running))
    found: dict[str, list[Job]] = {}
    for job, attempts in zip(running, histories, strict=True):
        worker = attempts[-1].worker_id if attempts else None
        if worker is not None:
            found.setdefault(worker, []).append(job)
    return found


@router.get("/workers")
async def workers(request: Request, app: AppDep, you: ViewerDep) -> Response:
    if not you.scope.admin:
        return _forbidden(request, you, "Workers")
    alive = await app.workers_async()
    runs = await running_by_worker(app)
    return page(request, you, "workers.html", workers=alive, runs=runs)
