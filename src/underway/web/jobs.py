"""/api/v1/jobs: list, get, enqueue, cancel, retry and delete jobs; retry or delete the dead
letters in bulk. Every job passes through the caller's `Scope` (access.py)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response, status
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime

from ..jobjson import delivery_to_json, job_to_json
from ..model import Job, Status, View
from .access import AppDep, ScopeDep, job_or_404
from .arguments import check_arguments
from .render import attempt_json
from .schemas import CountOut, DeadLettersIn, EnqueueIn, HistoryOut, JobOut, PageOut, Problem
from .texts import Text, checked

router = APIRouter(tags=["jobs"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem}}
CONFLICT: dict[int | str, dict[str, Any]] = {404: {"model": Problem}, 409: {"model": Problem}}
OVER_QUOTA = "the tenant is over its enqueue quota: retry after Retry-After seconds"


def _job(job: Job, code: int = status.HTTP_200_OK) -> JSONResponse:
    return JSONResponse(job_to_json(job), status_code=code)


@router.get("/jobs", response_model=PageOut)
async def list_jobs(
    app: AppDep,
    scope: ScopeDep,
    status: Status | None = None,
    view: View | None = None,
    task: Text = None,
    queue: Text = None,
    tenant: Text = None,
    key: Text = None,
    created_after: AwareDatetime | None = None,
    created_before: AwareDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: uuid.UUID | None = None,
) -> Response:
    """Jobs, newest first. `view`: scheduled (pending, due later) or retrying (pending after a
    failed attempt); `created_after` is inclusive. A tenant key sees only its tenant's jobs."""
    if scope.elsewhere(tenant):
        return JSONResponse({"jobs": [], "next_cursor": None})
    page = await app.list_jobs_async(
        status=status, view=view, task=task, queue=queue, tenant=scope.tenant_filter(tenant),
        key=key, created_after=created_after, created_before=created_before, limit=limit,
        cursor=None if cursor is None else str(cursor),
    )  # fmt: skip
    return JSONResponse(
        {"jobs": [job_to_json(j) for j in page.jobs], "next_cursor": page.next_cursor}
    )


@router.post(
    "/jobs",
    status_code=status.HTTP_201_CREATED,
    response_model=JobOut,
    responses={
        403: {"model": Problem},
        404: {"model": Problem},
        409: {"model": Problem},
        429: {"model": Problem, "description": OVER_QUOTA},
    },
)
async def enqueue(app: AppDep, scope: ScopeDep, body: EnqueueIn) -> Response:
    """Run a registered task: 404 for an unknown task, 422 when the arguments do not fit its
    signature. With a unique key an unfinished job already holds, that job is answered. An
    `id` a job already has (of any tenant) is refused with 409. 429 when the job's tenant is
    over its enqueue quota, with Retry-After in seconds."""
    tenant = scope.tenant_for_enqueue(body.tenant)
    task = app.get_task(body.task)  # UnknownTask: 404
    check_arguments(task, body.args)
    options = task.options(
        queue=body.queue, priority=body.priority, delay=body.delay, run_at=body.run_at,
        key=body.key, tenant=tenant, callback_url=body.callback_url, title=body.title,
        max_attempts=body.max_attempts, id=body.id,
    )  # fmt: skip
    job = await options.enqueue_async(**body.args)
    if not scope.visible(job):
        # The key is held by another tenant's unfinished job: say so without showing it.
        raise HTTPException(status.HTTP_409_CONFLICT, f"another job holds the key {body.key!r}")
    return _job(job, status.HTTP_201_CREATED)


@router.get("/jobs/{job_id}", response_model=JobOut, responses=NOT_FOUND)
async def get_job(app: AppDep, scope: ScopeDep, job_id: uuid.UUID) -> Response:
    return _job(await job_or_404(app, scope, job_id))


@router.post("/jobs/{job_id}/cancel", response_model=JobOut, responses=CONFLICT)
async def cancel_job(app: AppDep, scope: ScopeDep, job_id: uuid.UUID) -> Response:
    """Pending: cancelled at once. Running: its worker is asked to stop (`cancel_requested`).
    409 when it already finished otherwise."""
    await job_or_404(app, scope, job_id)
    return _job(await app.cancel_async(job_id))


@router.post("/jobs/{job_id}/retry", response_model=JobOut, responses=CONFLICT)
async def retry_job(app: AppDep, scope: ScopeDep, job_id: uuid.UUID) -> Response:
    """A failed or cancelled job runs again (same id, attempts reset); 409 otherwise."""
    await job_or_404(app, scope, job_id)
    return _job(await app.retry_async(job_id))


@router.delete("/jobs/{job_id}", status_code=status.HTTP_204_NO_CONTENT, responses=CONFLICT)
async def delete_job(app: AppDep, scope: ScopeDep, job_id: uuid.UUID) -> Response:
    """Delete a finished job; 409 while it is pending or running (cancel it first)."""
    await job_or_404(app, scope, job_id)
    await app.delete_job_async(job_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/jobs/{job_id}/attempts", response_model=list[HistoryOut], responses=NOT_FOUND)
async def job_attempts(app: AppDep, scope: ScopeDep, job_id: uuid.UUID) -> Response:
    """Every attempt of the job, oldest first (worker, start and end, outcome, error,
    duration), then its completion callbacks with their attempts."""
    await job_or_404(app, scope, job_id)
    history = [attempt_json(a) for a in await app.attempts_async(job_id)]
    history += [{"kind": "delivery", **delivery_to_json(d)}
                for d in await app.deliveries_async(job_id)]  # fmt: skip
    return JSONResponse(history)


@router.post("/dead-letters/retry", response_model=CountOut)
async def retry_dead_letters(app: AppDep, scope: ScopeDep, body: DeadLettersIn) -> Response:
    """Run every matching failed job again; answers how many."""
    if scope.elsewhere(body.tenant):
        return JSONResponse({"count": 0})
    count = await app.retry_failed_async(**_selection(body, scope.tenant_filter(body.tenant)))
    return JSONResponse({"count": count})


@router.post("/dead-letters/delete", response_model=CountOut)
async def delete_dead_letters(app: AppDep, scope: ScopeDep, body: DeadLettersIn) -> Response:
    """Delete every matching failed job; answers how many."""
    if scope.elsewhere(body.tenant):
        return JSONResponse({"count": 0})
    count = await app.delete_failed_async(**_selection(body, scope.tenant_filter(body.tenant)))
    return JSONResponse({"count": count})


def _selection(body: DeadLettersIn, tenant: str | None) -> dict[str, Any]:
    return {
        "task": checked("task", body.task),
        "queue": checked("queue", body.queue),
        "tenant": checked("tenant", tenant),
        "created_after": body.created_after,
        "created_before": body.created_before,
    }
