"""The app the fault scenarios run in real worker processes: `python -m faultapp
[--concurrency N]`. The database URL and the settings come from `UNDERWAY_*` variables, the
ledger's path from `FAULTS_LEDGER`, the process's incarnation from `FAULTS_INCARNATION`.

Each job's probe is its own id. Every task writes `start`, then its `effect`, then `end` to the
ledger (ledger.py); a job stopped before its effect (a cancel, a shutdown hand-back) writes
`stopped` instead of the last two.
"""

from __future__ import annotations

import argparse
import faulthandler
import importlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if "libfaketime" in os.environ.get("LD_PRELOAD", ""):
    # Under libfaketime 0.9.10 with the monotonic clock left alone (F20 skews only the wall
    # clock), Python's time.sleep (clock_nanosleep, TIMER_ABSTIME) fails with EINVAL; a
    # timed wait on an Event reads the same monotonic clock and works.
    def _sleep(seconds: float) -> None:
        threading.Event().wait(seconds)

    time.sleep = _sleep

import egress
from ledger import INCARNATION_VAR, LEDGER_VAR, Event, write

import underway

#: how often a cooperative job looks whether it was asked to stop
STEP = 0.05


def _mark(ctx: underway.Context, event: Event, detail: str = "") -> None:
    write(os.environ[LEDGER_VAR], event, str(ctx.job.id), ctx.job.attempt, detail)


def _done(ctx: underway.Context) -> dict[str, Any]:
    _mark(ctx, Event.EFFECT)
    _mark(ctx, Event.END)
    return {"attempt": ctx.job.attempt, "incarnation": os.environ.get(INCARNATION_VAR, "")}


def probe(ctx: underway.Context, seconds: float = 0.0) -> dict[str, Any]:
    """Works `seconds`, looking for a stop every STEP; then its effect."""
    _mark(ctx, Event.START)
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if ctx.wait_cancelled(min(STEP, left)):
            _mark(ctx, Event.STOPPED, ctx.cancel_reason or "")
            return {"stopped": ctx.cancel_reason}
    return _done(ctx)


def stubborn(ctx: underway.Context, seconds: float) -> dict[str, Any]:
    """Works `seconds` without ever looking for a stop (a job in a C call, say)."""
    _mark(ctx, Event.START)
    time.sleep(seconds)
    return _done(ctx)


def poison(ctx: underway.Context) -> None:
    """Kills the process that runs it, at once, every time (a segfault, an OOM kill)."""
    _mark(ctx, Event.START)
    os._exit(1)


#: the tasks every scenario may use; a group of scenarios adds its own in a module
#: `tasks_<group>.py` next to this one, holding `TASKS = [(function, {task options}), ...]`
#: (names become `faults.<function name>`), so groups never edit the same file
TASKS: list[tuple[Callable[..., Any], dict[str, Any]]] = [
    (probe, {"max_attempts": 5}),
    (stubborn, {"max_attempts": 5}),
    (poison, {"max_attempts": 5}),
]


def all_tasks() -> list[tuple[Callable[..., Any], dict[str, Any]]]:
    found = list(TASKS)
    for path in sorted(Path(__file__).resolve().parent.glob("tasks_*.py")):
        found += importlib.import_module(path.stem).TASKS
    return found


#: a group whose schedules the workers declare: `FAULTS_SCHEDULES=skew` calls
#: `tasks_skew.schedule(app)` (only that scenario's workers fire them)
SCHEDULES_VAR = "FAULTS_SCHEDULES"


def make_app(url: str | None = None, **settings: Any) -> underway.App:
    app = underway.App(url, **settings)
    for fn, options in all_tasks():
        app.task(name=f"faults.{fn.__name__}", **options)(fn)
    group = os.environ.get(SCHEDULES_VAR)
    if group:
        importlib.import_module(f"tasks_{group}").schedule(app)
    return app


app = make_app()


def main(argv: list[str] | None = None) -> None:
    egress.install_from_env()
    parser = argparse.ArgumentParser(prog="faultapp")
    parser.add_argument("--concurrency", type=int, default=4)
    options = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("FAULTS_LOG_LEVEL", "INFO"),
        stream=sys.stderr,
        format=f"%(asctime)s {os.environ.get(INCARNATION_VAR, '')} %(levelname)s %(message)s",
    )
    faulthandler.register(signal.SIGUSR1)
    app.run_worker(concurrency=options.concurrency)


if __name__ == "__main__":
    main()
