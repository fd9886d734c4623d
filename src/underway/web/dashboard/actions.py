"""What the dashboard's buttons do: each is a form POST that carries the page's CSRF token,
is confirmed in the browser first (dashboard.js), and redirects back with a message. They call
the same App methods, through the same `Scope`, as the JSON API's routes."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse

from ...app import App
from ...errors import UnderwayError
from ...model import Job
from ..access import SESSION_COOKIE, get_app, job_or_404
from ..texts import checked
from . import csrf, flash
from .rendering import base_path, render_bare
from .session import Viewer, end, find_viewer

router = APIRouter(include_in_schema=False)

#: the largest form body read (the forms carry a few short fields)
MAX_FORM_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class Act:
    """One confirmed, CSRF-checked request to change something."""

    app: App
    viewer: Viewer
    form: dict[str, str]

    def field(self, name: str) -> str | None:
        return checked(name, self.form.get(name, "").strip() or None)


Doing = Callable[[Act], Awaitable[str]]  # does it; answers what happened, for the message


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "this form is too large")
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def back_to(request: Request, wanted: str | None) -> str:
    """Where to go after an action: the page it was asked from, if that is a path of this
    dashboard (never another site), else the overview."""
    base = base_path(request)
    safe = wanted and wanted.startswith(f"{base}/") and not wanted.startswith("//")
    return wanted if safe and wanted and "\\" not in wanted else f"{base}/"


async def act(request: Request, doing: Doing, after: str | None = None) -> Response:
    """Check the request came from this dashboard, do it, and go back with a message."""
    form = await _form(request)
    try:
        csrf.check(request, request.cookies.get(SESSION_COOKIE), form.get("csrf"))
        viewer = await find_viewer(request)
        if viewer is None or viewer.fresh:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "log in first")
    except HTTPException as exc:
        return refused(request, str(exc.detail), exc.status_code)
    target = back_to(request, after or form.get("next"))
    response = RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
    path = base_path(request) or "/"
    try:
        done = await doing(Act(get_app(request), viewer, form))
    except HTTPException as exc:
        flash.leave(response, request, "error", str(exc.detail), path)
    except UnderwayError as exc:
        flash.leave(response, request, "error", str(exc), path)
    else:
        flash.leave(response, request, "ok", done, path)
    return response


def refused(request: Request, reason: str, code: int) -> HTMLResponse:
    body = render_bare("refused.html", base=base_path(request), reason=reason)
    return HTMLResponse(body, status_code=code)


def _job_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job with id {raw}") from None


# --- jobs ------------------------------------------------------------------------------------


async def _cancel(app: App, job: Job) -> str:
    job = await app.cancel_async(job.id)
    return "Cancelled." if job.status.finished else "Cancel requested: its worker stops it."


async def _retry(app: App, job: Job) -> str:
    await app.retry_async(job.id)
    return "Queued to run again."


async def _delete(app: App, job: Job) -> str:
    await app.delete_job_async(job.id)
    return f"Deleted job {job.id}."


JOB_VERBS: dict[str, Callable[[App, Job], Awaitable[str]]] = {
    "cancel": _cancel,
    "retry": _retry,
    "delete": _delete,
}


@router.post("/jobs/{job_id}/{verb}")
async def job_action(request: Request, job_id: str, verb: str) -> Response:
    """Cancel, retry or delete one job the viewer may see (another tenant's answers 404)."""

    async def doing(a: Act) -> str:
        if verb not in JOB_VERBS:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"jobs cannot {verb}")
        job = await job_or_404(a.app, a.viewer.scope, _job_id(job_id))
        return await JOB_VERBS[verb](a.app, job)

    return await act(request, doing)


# --- dead letters in bulk --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Selection:
    """Which dead letters a bulk action takes: the list's filters."""

    task: str | None
    queue: str | None
    tenant: str | None


def _selection(a: Act) -> Selection | None:
    """The matching dead letters' filters; None when a tenant key names another tenant."""
    asked = a.field("tenant")
    if a.viewer.scope.elsewhere(asked):
        return None
    return Selection(a.field("task"), a.field("queue"), a.viewer.scope.tenant_filter(asked))


@router.post("/dead-letters/{verb}")
async def dead_letters_action(request: Request, verb: str) -> Response:
    """Retry or delete every dead letter that matches the list's filters."""
    verbs: dict[str, tuple[Callable[..., Awaitable[int]], str]] = {
        "retry": (lambda app, **where: app.retry_failed_async(**where), "queued to run again"),
        "delete": (lambda app, **where: app.delete_failed_async(**where), "deleted"),
    }

    async def doing(a: Act) -> str:
        if verb not in verbs:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"dead letters cannot {verb}")
        run, done = verbs[verb]
        where = _selection(a)
        count = 0
        if where is not None:
            count = await run(a.app, task=where.task, queue=where.queue, tenant=where.tenant)
        return f"{count} failed job{'s' if count != 1 else ''} {done}."

    return await act(request, doing)


# --- queues and schedules (admin keys only) --------------------------------------------------


@router.post("/queues/{name}/{verb}")
async def queue_action(request: Request, name: str, verb: str) -> Response:
    async def doing(a: Act) -> str:
        a.viewer.scope.require_admin("changing a queue")
        queue = checked("queue", name) or ""
        if verb == "pause":
            await a.app.pause_queue_async(queue)
            return f"Queue {queue} paused: running jobs finish, no new ones start."
        if verb == "resume":
            await a.app.resume_queue_async(queue)
            return f"Queue {queue} resumed."
        if verb == "concurrency":
            limit = _concurrency(a.field("concurrency"))
            await a.app.set_queue_concurrency_async(queue, limit)
            return f"Queue {queue}: " + ("no limit." if limit is None else f"at most {limit}.")
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"queues cannot {verb}")

    return await act(request, doing)


def _concurrency(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) > 2**31 - 1:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"concurrency must be a whole number of jobs (0 or more), or empty for no limit; "
            f"got {raw!r}",
        )
    return int(raw)


@router.post("/schedules/{name}/{verb}")
async def schedule_action(request: Request, name: str, verb: str) -> Response:
    verbs: dict[str, Callable[[App, str], Awaitable[object]]] = {
        "pause": lambda app, n: app.pause_schedule_async(n),
        "resume": lambda app, n: app.resume_schedule_async(n),
        "trigger": lambda app, n: app.trigger_schedule_async(n),
    }

    async def doing(a: Act) -> str:
        a.viewer.scope.require_admin("changing a schedule")
        if verb not in verbs:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"schedules cannot {verb}")
        done = await verbs[verb](a.app, checked("schedule", name) or "")
        if verb == "trigger":
            return f"Schedule {name} triggered: job {getattr(done, 'id', '')} is queued."
        return f"Schedule {name} {verb}d."

    return await act(request, doing)


# --- the session -----------------------------------------------------------------------------


@router.post("/logout")
async def logout(request: Request) -> Response:
    async def doing(a: Act) -> str:
        return "Logged out."

    response = await act(request, doing, after=f"{base_path(request)}/login")
    if response.status_code == status.HTTP_303_SEE_OTHER:
        end(request, response)
    return response
