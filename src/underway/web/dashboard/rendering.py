"""Turning data into pages: the Jinja2 environment (autoescaped, templates shipped in this
package), the filters the templates use, and `page`, which renders one with what every page
shows (navigation, the viewer's tenant, the CSRF token, a message from the last action)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from . import flash
from .session import Viewer, remember

#: the navigation: (path, label, whether it needs an admin key)
NAVIGATION: tuple[tuple[str, str, bool], ...] = (
    ("/", "Overview", False),
    ("/jobs", "Jobs", False),
    ("/dead-letters", "Dead letters", False),
    ("/schedules", "Schedules", True),
    ("/queues", "Queues", True),
    ("/workers", "Workers", True),
)


def ago(value: datetime | None, now: datetime | None = None) -> str:
    """How long before `now` (or after it: "in 5 s") a time is, in the largest whole unit.

    >>> from datetime import timedelta
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> ago(t, t + timedelta(seconds=90)), ago(t + timedelta(hours=3), t)
    ('1 min ago', 'in 3 h')
    """
    if value is None:
        return "—"
    seconds = ((now or datetime.now(UTC)) - value).total_seconds()
    text = duration(abs(seconds), whole=True)
    return f"{text} ago" if seconds >= 0 else f"in {text}"


def duration(seconds: float | None, whole: bool = False) -> str:
    """Seconds as a short text: 0.42 s, 12 s, 3 min, 2 h, 4 d.

    >>> duration(0.4213), duration(75), duration(7300)
    ('0.42 s', '1 min', '2 h')
    """
    if seconds is None:
        return "—"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    if whole or seconds >= 10:
        return f"{int(seconds)} s"
    return f"{seconds:.2f} s"


def pretty(value: Any) -> str:
    """A JSON value indented for reading."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


#: the most of a job's arguments, payload or result a page shows, in bytes of UTF-8: a job may
#: carry up to max_args_bytes (1 MiB by default), which no page should have to hold
SHOWN_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Clipped:
    """A text cut to SHOWN_BYTES, and how many bytes of it were left out."""

    text: str
    more: int


def clip(text: str, limit: int = SHOWN_BYTES) -> Clipped:
    """`text` cut to at most `limit` bytes of UTF-8 (on a character boundary).

    >>> clip("abcdef", 4)
    Clipped(text='abcd', more=2)
    """
    data = text.encode()
    if len(data) <= limit:
        return Clipped(text, 0)
    kept = data[:limit].decode("utf-8", "ignore")
    return Clipped(kept, len(data) - len(kept.encode()))


def iso(value: datetime | None) -> str:
    return "" if value is None else value.isoformat()


def when(value: datetime | None) -> str:
    """A time as people read it, in UTC to the second."""
    return "—" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("underway.web.dashboard", "templates"),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(ago=ago, duration=duration, pretty=pretty, clip=clip, iso=iso, when=when)
    return env


ENVIRONMENT = _environment()


def base_path(request: Request) -> str:
    """The path the API is mounted at ("" at the root): every link starts with it."""
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


async def mark_stream_start(request: Request) -> None:
    """Note the change feed's head before a page reads what it shows: the page's event
    stream starts there, so a change made while the page is rendered or loading is still
    seen (a stream "from now" would miss it)."""
    app = request.app.state.underway
    request.state.stream_since = await asyncio.to_thread(app.store.change_head)


def page(
    request: Request, viewer: Viewer, template: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """The page `template` for `viewer`, with what every page shows."""
    base = base_path(request)
    message = flash.take(request)
    body = ENVIRONMENT.get_template(template).render(
        base=base,
        path=request.url.path,
        here=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        viewer=viewer,
        csrf=viewer.csrf,
        navigation=[
            (base + p, label) for p, label, admin in NAVIGATION if viewer.scope.admin or not admin
        ],
        flash=message,
        since=getattr(request.state, "stream_since", None) or "",
        **context,
    )
    response = HTMLResponse(body, status_code=status_code)
    if message is not None:
        flash.forget(response, base or "/")
    remember(request, response, viewer)
    return response


def render_bare(template: str, **context: Any) -> str:
    """A template rendered without a viewer (the login page)."""
    return ENVIRONMENT.get_template(template).render(**context)
