"""The app that the schedule process tests run in real processes: one fast schedule that every
process fires, so each slot must still become exactly one job.

    python -m schedapp scheduler   # app.run_scheduler(): only the scheduler
    python -m schedapp worker      # app.run_worker(): runs jobs, and its scheduler is on
    python -m schedapp bare        # app.run_scheduler() of an app that declares no schedule,
                                   # only the task STORED_TASK (for schedules put at run time)

The database URL and the settings come from `UNDERWAY_*` variables, the interval (seconds) from
`SCHEDAPP_EVERY`. Each process logs at INFO to stderr, including the scheduler's
"schedule ... fired job ..." line for every job it created.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import signal
import sys
from typing import Any

import underway

EVERY_VAR = "SCHEDAPP_EVERY"
SCHEDULE = "fast-beat"
TASK = "beat"
STORED_TASK = "stored-beat"


def make_bare_app(url: str | None = None, **settings: Any) -> underway.App:
    """An app with the task STORED_TASK and no schedule at all."""
    app = underway.App(url, **settings)

    @app.task(name=STORED_TASK)
    def stored_beat() -> str:
        return "stored"

    return app


def make_app(url: str | None = None, every: float | None = None, **settings: Any) -> underway.App:
    """The app with its schedule; names are fixed so every process agrees on them."""
    app = underway.App(url, **settings)
    interval = every if every is not None else float(os.environ.get(EVERY_VAR, "0.2"))

    @app.periodic(every=interval, schedule_name=SCHEDULE, name=TASK)
    def beat() -> str:
        return "beat"

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="schedapp")
    parser.add_argument("mode", choices=["scheduler", "worker", "bare"])
    options = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s pid={os.getpid()} %(levelname)s %(name)s: %(message)s",
    )
    faulthandler.register(signal.SIGUSR1)  # the tests dump our stacks before giving up on us
    app = make_bare_app() if options.mode == "bare" else make_app()
    if options.mode in ("scheduler", "bare"):
        app.run_scheduler()
    else:
        app.run_worker(scheduler=True)


if __name__ == "__main__":
    main()
