"""The pages about jobs: the overview, the jobs list, one job, and the dead letters. Each
reads through the same App calls and `Scope` as the JSON API's routes (access.py), so a page
shows exactly what the caller's key may see there."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse

from ... import secret
from ...model import Status
from ..access import AppDep
from .filters import PAGE_SIZE, JobQuery
from .rendering import base_path, mark_stream_start, page
from .session import Viewer, viewer

router = APIRouter(include_in_schema=False, dependencies=[Depends(mark_stream_start)])
ViewerDep = Annotated[Viewer, Depends(viewer)]

#: the path of the overview chart's data (web/control.py serves it)
HISTORY_PATH = "/api/v1/stats/history"


@router.get("/")
async def overview(request: Request, app: AppDep, you: ViewerDep) -> Response:
    scope = you.scope
    stats = await app.stats_async(tenant=scope.tenant)
    running = await app.list_jobs_async(status=Status.RUNNING, tenant=scope.tenant, limit=10)
    failed = await app.list_jobs_async(status=Status.FAILED, tenant=scope.tenant, limit=5)
    queues = await app.queues_async() if scope.admin else None
    workers = await app.workers_async() if scope.admin else None
    return page(
        request, you, "overview.html", stats=stats, running=running.jobs, failed=failed.jobs,
        queues=queues, workers=workers, history=HISTORY_PATH,
    )  # fmt: skip


@router.get("/jobs")
async def jobs(request: Request, app: AppDep, you: ViewerDep) -> Response:
    query = JobQuery.of(request)
    scope = you.scope
    if query.searched_id is not None:
        found = await app.get_job_async(query.searched_id)
        if found is not None and scope.visible(found):
            return RedirectResponse(f"{base_path(request)}/jobs/{found.id}", status_code=303)
    if scope.elsewhere(query.tenant):
        listed, cursor = [], None
    else:
        found_page = await app.list_jobs_async(
            status=query.status, view=query.view, task=query.task, queue=query.queue,
            tenant=scope.tenant_filter(query.tenant),
            key=None if query.searched_id is not None else query.q,
            limit=PAGE_SIZE, cursor=query.cursor,
        )  # fmt: skip
        listed, cursor = found_page.jobs, found_page.next_cursor
    if query.searched_id is not None:
        listed, cursor = [], None  # an id that is no job (the caller may see) matches nothing
    tasks = sorted(app.tasks)
    queues = sorted({t.queue for t in app.tasks.values()} | {"default"})
    return page(
        request, you, "jobs.html", jobs=listed, next_cursor=cursor, query=query,
        statuses=list(Status), tasks=tasks, queues=queues,
    )  # fmt: skip


@router.get("/jobs/{job_id}")
async def job(request: Request, app: AppDep, you: ViewerDep, job_id: str) -> Response:
    try:
        ident = uuid.UUID(job_id)
    except ValueError:
        ident = None
    found = None if ident is None else await app.get_job_async(ident)
    if found is None or not you.scope.visible(found):
        return page(request, you, "missing.html", status_code=404, what=f"job {job_id}")
    attempts = await app.attempts_async(found.id)
    deliveries = await app.deliveries_async(found.id)
    return page(
        request, you, "job.html", job=found, args=secret.shown(found.args), attempts=attempts,
        deliveries=deliveries,
    )  # fmt: skip


@router.get("/dead-letters")
async def dead_letters(request: Request, app: AppDep, you: ViewerDep) -> Response:
    query = JobQuery.of(request)
    scope = you.scope
    listed, cursor = [], None
    if not scope.elsewhere(query.tenant):
        found = await app.list_jobs_async(
            status=Status.FAILED, task=query.task, queue=query.queue,
            tenant=scope.tenant_filter(query.tenant), limit=PAGE_SIZE, cursor=query.cursor,
        )  # fmt: skip
        listed, cursor = found.jobs, found.next_cursor
    return page(
        request, you, "dead_letters.html", jobs=listed, next_cursor=cursor, query=query,
        tasks=sorted(app.tasks),
    )  # fmt: skip
