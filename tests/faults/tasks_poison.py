"""Tasks of F02: jobs that take their worker process down with them every time they run, in
the ways a process dies of its job (`faultapp.poison` is the `os._exit` one)."""

from __future__ import annotations

import os
import signal
from typing import Any

from ledger import LEDGER_VAR, Event, write

import underway


def aborts(ctx: underway.Context) -> None:
    """Dies of SIGABRT, as a failed assertion in a C extension does."""
    write(os.environ[LEDGER_VAR], Event.START, str(ctx.job.id), ctx.job.attempt)
    os.abort()


def oom_killed(ctx: underway.Context) -> None:
    """Dies of SIGKILL from within, as when the kernel's OOM killer picks the process."""
    write(os.environ[LEDGER_VAR], Event.START, str(ctx.job.id), ctx.job.attempt)
    os.kill(os.getpid(), signal.SIGKILL)


TASKS: list[tuple[Any, dict[str, Any]]] = [
    (aborts, {"max_attempts": 10}),
    (oom_killed, {"max_attempts": 10}),
]
