"""/api/v1/events: Server-Sent Events of job changes, built on `app.watch_async`.

Each change is `event: job`, `id: <cursor>`, `data: <the job as JSON>`. A client that
reconnects sends the last id it saw as `Last-Event-ID` (browsers' EventSource does it by itself)
and gets every change after it, none twice, as long as the change feed still holds them. A
comment line goes out every `PING_SECONDS` so proxies keep the connection open. The stream
ends when the client goes away or the server shuts down; a cursor the feed does not know ends
it with one `event: error` saying so.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, Query
from sse_starlette import EventSourceResponse, ServerSentEvent

from ..app import App
from ..errors import InvalidArguments
from ..jobjson import job_to_json
from ..model import Change
from .access import AppDep, Scope, ScopeDep
from .texts import Text, checked

router = APIRouter(tags=["events"])

#: seconds between keep-alive comments
PING_SECONDS = 15


@router.get(
    "/events",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "job changes"}},
)
async def events(
    app: AppDep,
    scope: ScopeDep,
    job: uuid.UUID | None = None,
    task: Text = None,
    queue: Text = None,
    tenant: Text = None,
    since: Annotated[str | None, Query(description="resume after this cursor")] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    """Follow job changes live: enqueued, started, progress, retry waits, finishes, cancel
    requests. A tenant key's stream carries its tenant's jobs only."""
    cursor = checked("Last-Event-ID", last_event_id or since)
    closing = anyio.Event()  # set by sse-starlette when the server shuts down
    if scope.elsewhere(tenant):
        stream: AsyncIterator[ServerSentEvent] = _nothing(closing)
    else:
        filters = {"job": job, "task": task, "queue": queue,
                   "tenant": scope.tenant_filter(tenant)}  # fmt: skip
        if cursor is None:
            # "From now" is fixed before the answer goes out: a client that has the response
            # headers sees every change made after it, even one it makes at once itself.
            cursor = await asyncio.to_thread(app.store.change_head)
        stream = _changes(app, scope, filters, cursor, closing)
    return EventSourceResponse(
        stream, ping=PING_SECONDS, shutdown_event=closing, shutdown_grace_period=5
    )


async def _changes(
    app: App, scope: Scope, filters: dict[str, Any], cursor: str | None, closing: anyio.Event
) -> AsyncIterator[ServerSentEvent]:
    try:
        async for change in _until(closing, app.watch_async(**filters, since=cursor)):
            if scope.visible(change.job):  # the filter already ensures it; never leak anyway
                yield ServerSentEvent(
                    data=json.dumps(job_to_json(change.job)), event="job", id=change.cursor
                )
    except InvalidArguments as exc:
        yield ServerSentEvent(data=json.dumps({"detail": str(exc)}), event="error")


async def _until(closing: anyio.Event, changes: AsyncIterator[Change]) -> AsyncIterator[Change]:
    """`changes` until `closing` is set: then the stream ends cleanly (its last chunk sent)
    instead of being cut off when the server stops."""
    closed = asyncio.ensure_future(closing.wait())
    step: asyncio.Future[Change] | None = None
    try:
        while True:
            step = asyncio.ensure_future(anext(changes))
            await asyncio.wait({step, closed}, return_when=asyncio.FIRST_COMPLETED)
            if not step.done():
                return
            try:
                yield step.result()
            except StopAsyncIteration:
                return
    finally:
        closed.cancel()
        # The client went away (this generator is cancelled) or the server closes: the step
        # still runs `changes` on its task, and closing a generator that runs is an error.
        if step is not None and not step.done():
            step.cancel()
            await asyncio.gather(step, return_exceptions=True)
        await _aclose(changes)


async def _aclose(changes: AsyncIterator[Change]) -> None:
    close = getattr(changes, "aclose", None)
    if close is not None:
        await close()


async def _nothing(closing: anyio.Event) -> AsyncIterator[ServerSentEvent]:
    """A stream of no changes (a tenant key asking for another tenant): pings only."""
    await closing.wait()
    return
    yield  # an async generator, though it never yields
