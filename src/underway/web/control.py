"""/api/v1 beyond single jobs: registered tasks, queues, schedules, workers and stats.

What a tenant key may do here: list the tasks (it needs them to enqueue) and read stats, which
count only its own tenant's jobs. Queues, schedules and workers are shared by every tenant, so
seeing and steering them needs an admin key (403 otherwise).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..errors import InvalidArguments, UnknownTask
from ..jobjson import job_to_json
from ..model import HISTORY_MINUTES, MinuteStats
from .access import AppDep, ScopeDep
from .render import (
    history_json,
    queue_json,
    schedule_json,
    stats_json,
    task_json,
    worker_json,
)
from .schemas import (
    ConcurrencyIn,
    JobOut,
    Problem,
    QueueOut,
    ScheduleIn,
    ScheduleOut,
    StatsHistoryOut,
    StatsOut,
    TaskOut,
    WorkerOut,
)
from .texts import Text, checked

router = APIRouter()

ADMIN: dict[int | str, dict[str, Any]] = {403: {"model": Problem}}
ADMIN_404: dict[int | str, dict[str, Any]] = {403: {"model": Problem}, 404: {"model": Problem}}


@router.get("/tasks", response_model=list[TaskOut], tags=["tasks"])
async def list_tasks(app: AppDep, scope: ScopeDep) -> Response:
    """Every registered task with a JSON Schema of its keyword arguments."""
    return JSONResponse([task_json(task) for _, task in sorted(app.tasks.items())])


@router.get("/stats", response_model=StatsOut, tags=["stats"])
async def stats(app: AppDep, scope: ScopeDep) -> Response:
    """Jobs by status, task and queue, with run statistics per task and schedule. A tenant
    key gets its tenant's counts only (and no run statistics, which cover every tenant)."""
    return JSONResponse(stats_json(await app.stats_async(tenant=scope.tenant)))


@router.get("/stats/history", response_model=StatsHistoryOut, tags=["stats"])
async def stats_history(
    app: AppDep,
    scope: ScopeDep,
    minutes: Annotated[int, Query(ge=1, le=HISTORY_MINUTES)] = 60,
    tenant: Text = None,
) -> Response:
    """Jobs completed, failed and cancelled per minute over the last `minutes` minutes, oldest
    first, one entry per minute (zeros too), the current minute last. An admin key sees every
    tenant's (or one, with `tenant`); a tenant key its own tenant's."""
    scoped = scope.tenant_filter(tenant)
    history = await app.stats_history_async(minutes, scoped)
    if scope.elsewhere(tenant):
        # Another tenant's history: zeros, as its lists are empty.
        history = [MinuteStats(m.at) for m in history]
    return JSONResponse(history_json(history))


@router.get("/workers", response_model=list[WorkerOut], responses=ADMIN, tags=["workers"])
async def list_workers(app: AppDep, scope: ScopeDep) -> Response:
    """The workers alive now, on any machine, each with how many jobs it runs."""
    scope.require_admin("listing workers")
    return JSONResponse([worker_json(w) for w in await app.workers_async()])


# --- queues ------------------------------------------------------------------------------------


@router.get("/queues", response_model=list[QueueOut], responses=ADMIN, tags=["queues"])
async def list_queues(app: AppDep, scope: ScopeDep) -> Response:
    """Every queue with jobs or controls: paused, its concurrency limit, its jobs by status."""
    scope.require_admin("listing queues")
    return JSONResponse([queue_json(q) for q in await app.queues_async()])


@router.post("/queues/{name}/pause", response_model=QueueOut, responses=ADMIN, tags=["queues"])
async def pause_queue(app: AppDep, scope: ScopeDep, name: str) -> Response:
    """Stop every worker from starting this queue's jobs (running ones finish)."""
    scope.require_admin("pausing a queue")
    await app.pause_queue_async(_name(name))
    return await _queue(app, name)


@router.post("/queues/{name}/resume", response_model=QueueOut, responses=ADMIN, tags=["queues"])
async def resume_queue(app: AppDep, scope: ScopeDep, name: str) -> Response:
    scope.require_admin("resuming a queue")
    await app.resume_queue_async(_name(name))
    return await _queue(app, name)


@router.put("/queues/{name}/concurrency", response_model=QueueOut, responses=ADMIN, tags=["queues"])
async def set_concurrency(app: AppDep, scope: ScopeDep, name: str, body: ConcurrencyIn) -> Response:
    """Run at most `concurrency` of this queue's jobs at once across all workers (null: no
    limit)."""
    scope.require_admin("limiting a queue")
    await app.set_queue_concurrency_async(_name(name), body.concurrency)
    return await _queue(app, name)


async def _queue(app: AppDep, name: str) -> Response:
    found = next(q for q in await app.queues_async() if q.name == name)
    return JSONResponse(queue_json(found))


def _name(name: str) -> str:
    checked("name", name)
    return name


# --- schedules ---------------------------------------------------------------------------------


@router.get("/schedules", response_model=list[ScheduleOut], responses=ADMIN, tags=["schedules"])
async def list_schedules(app: AppDep, scope: ScopeDep) -> Response:
    """Every schedule with its rule, next and last run, run count, state and run stats."""
    scope.require_admin("listing schedules")
    return JSONResponse([schedule_json(s) for s in await app.list_schedules_async()])


@router.post(
    "/schedules/{name}/pause", response_model=ScheduleOut, responses=ADMIN_404,
    tags=["schedules"],
)  # fmt: skip
async def pause_schedule(app: AppDep, scope: ScopeDep, name: str) -> Response:
    """Stop firing this schedule in every process until resumed (404: no such schedule)."""
    scope.require_admin("pausing a schedule")
    await app.pause_schedule_async(_name(name))
    return await _schedule(app, name)


@router.post(
    "/schedules/{name}/resume", response_model=ScheduleOut, responses=ADMIN_404,
    tags=["schedules"],
)  # fmt: skip
async def resume_schedule(app: AppDep, scope: ScopeDep, name: str) -> Response:
    scope.require_admin("resuming a schedule")
    await app.resume_schedule_async(_name(name))
    return await _schedule(app, name)


@router.post(
    "/schedules/{name}/trigger", status_code=status.HTTP_201_CREATED, response_model=JobOut,
    responses=ADMIN_404, tags=["schedules"],
)  # fmt: skip
async def trigger_schedule(
    app: AppDep, scope: ScopeDep, name: str, tenant: str | None = None
) -> Response:
    """Run the schedule's task now, outside its slots (a schedule run once per tenant: for
    `tenant`); answers the new job."""
    scope.require_admin("triggering a schedule")
    job = await app.trigger_schedule_async(_name(name), tenant=tenant)
    return JSONResponse(job_to_json(job), status_code=status.HTTP_201_CREATED)


@router.post(
    "/schedules/{name}/restart", response_model=ScheduleOut, responses=ADMIN_404,
    tags=["schedules"],
)  # fmt: skip
async def restart_schedule(app: AppDep, scope: ScopeDep, name: str) -> Response:
    """Resume the schedule and count its slots again from now, in every process: an interval
    fires at once (404: no such schedule)."""
    scope.require_admin("restarting a schedule")
    await app.restart_schedule_async(_name(name))
    return await _schedule(app, name)


@router.put(
    "/schedules/{name}", response_model=ScheduleOut,
    responses={**ADMIN, 409: {"model": Problem}, 422: {"model": Problem}}, tags=["schedules"],
)  # fmt: skip
async def put_schedule(app: AppDep, scope: ScopeDep, name: str, body: ScheduleIn) -> Response:
    """Add a stored schedule, or update it: every scheduler fires it until it is removed (409:
    the name is declared in code, which owns it; 422: an unknown task, a bad rule or arguments
    that do not fit the task)."""
    scope.require_admin("putting a schedule")
    for field in ("task", "cron", "timezone", "tenant"):
        checked(field, getattr(body, field))
    for each in body.tenants or ():
        checked("tenants", each)
    try:
        task = app.get_task(body.task)
    except UnknownTask as exc:
        raise InvalidArguments(str(exc)) from None
    await run_in_threadpool(
        lambda: app.schedule(
            task, every=body.every, cron=body.cron, timezone=body.timezone,
            initial_delay=body.initial_delay, catch_up=body.catch_up,
            max_catch_up=body.max_catch_up, misfire_grace=body.misfire_grace,
            overlap=body.overlap, args=body.args, name=_name(name), tenant=body.tenant,
            tenants=body.tenants, stored=True,
        )
    )  # fmt: skip
    return await _schedule(app, name)


@router.delete(
    "/schedules/{name}", status_code=status.HTTP_204_NO_CONTENT,
    responses={**ADMIN_404, 409: {"model": Problem}}, tags=["schedules"],
)  # fmt: skip
async def remove_schedule(app: AppDep, scope: ScopeDep, name: str) -> Response:
    """Remove a schedule put at run time: no scheduler fires it any more (404: no such
    schedule; 409: it is declared in code, pause it instead)."""
    scope.require_admin("removing a schedule")
    await app.remove_schedule_async(_name(name))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _schedule(app: AppDep, name: str) -> Response:
    found = next(s for s in await app.list_schedules_async() if s.name == name)
    return JSONResponse(schedule_json(found))
