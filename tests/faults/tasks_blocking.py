"""Tasks of F05: jobs that block their worker's event loop, or hold the GIL, for seconds."""

from __future__ import annotations

import os
import time
from typing import Any

from ledger import INCARNATION_VAR, LEDGER_VAR, Event, write

import underway


def _mark(ctx: underway.Context, event: Event) -> None:
    write(os.environ[LEDGER_VAR], event, str(ctx.job.id), ctx.job.attempt)


def _done(ctx: underway.Context) -> dict[str, Any]:
    _mark(ctx, Event.EFFECT)
    _mark(ctx, Event.END)
    return {"attempt": ctx.job.attempt, "incarnation": os.environ.get(INCARNATION_VAR, "")}


async def blocks_loop(ctx: underway.Context, seconds: float) -> dict[str, Any]:
    """An async job that calls blocking code: the worker's event loop stops for `seconds`."""
    _mark(ctx, Event.START)
    time.sleep(seconds)
    return _done(ctx)


def holds_gil(ctx: underway.Context, seconds: float, chunk: int = 10**6) -> dict[str, Any]:
    """A sync job in long C calls: each `sum(range(chunk))` holds the GIL throughout (a
    fraction of a second here), one after another for `seconds`."""
    _mark(ctx, Event.START)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sum(range(chunk))
    return _done(ctx)


TASKS: list[tuple[Any, dict[str, Any]]] = [
    (blocks_loop, {"max_attempts": 5}),
    (holds_gil, {"max_attempts": 5}),
]
