"""Tasks of F22: a job that always raises, and one whose result is not JSON."""

from __future__ import annotations

import os
from typing import Any

from ledger import LEDGER_VAR, Event, write

import underway


def always_fails(ctx: underway.Context) -> None:
    write(os.environ[LEDGER_VAR], Event.START, str(ctx.job.id), ctx.job.attempt)
    raise RuntimeError(f"attempt {ctx.job.attempt} of a job that always fails")


def unserialisable(ctx: underway.Context) -> object:
    write(os.environ[LEDGER_VAR], Event.START, str(ctx.job.id), ctx.job.attempt)
    return object()


QUICK = underway.Backoff(base=0.05, max=0.2, jitter=False)
TASKS: list[tuple[Any, dict[str, Any]]] = [
    (always_fails, {"max_attempts": 3, "retry": QUICK}),
    (unserialisable, {"max_attempts": 3, "retry": QUICK}),
]
