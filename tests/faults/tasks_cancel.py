"""Tasks of F23: a cooperative job that reports its progress as it works."""

from __future__ import annotations

import os
import time
from typing import Any

from ledger import INCARNATION_VAR, LEDGER_VAR, Event, write

import underway

STEP = 0.05  # as faultapp's (not imported: faultapp imports this module)


def _mark(ctx: underway.Context, event: Event, detail: str = "") -> None:
    write(os.environ[LEDGER_VAR], event, str(ctx.job.id), ctx.job.attempt, detail)


def reporting(ctx: underway.Context, seconds: float) -> dict[str, Any]:
    """Works `seconds`, reporting its progress and looking for a cancel every STEP."""
    _mark(ctx, Event.START)
    started = time.monotonic()
    while (spent := time.monotonic() - started) < seconds:
        ctx.report_progress(min(spent / seconds, 1.0), f"{spent:.2f} s")
        if ctx.wait_cancelled(min(STEP, seconds - spent)):
            _mark(ctx, Event.STOPPED, ctx.cancel_reason or "")
            return {"stopped": ctx.cancel_reason}
    _mark(ctx, Event.EFFECT)
    _mark(ctx, Event.END)
    return {"attempt": ctx.job.attempt, "incarnation": os.environ.get(INCARNATION_VAR, "")}


TASKS: list[tuple[Any, dict[str, Any]]] = [(reporting, {"max_attempts": 5})]
