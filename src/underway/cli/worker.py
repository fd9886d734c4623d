"""The long-running processes: `underway worker APP` and `underway scheduler APP`; how they log,
and how a worker exits when a sync task's thread will not end."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click

from .loading import app_argument, load_app

F = TypeVar("F", bound=Callable[..., Any])

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

log = logging.getLogger("underway.cli")


def logging_options(fn: F) -> F:
    """`-v/--verbose` and `--log-level LEVEL`; the command receives `verbose` and `log_level`."""
    fn = click.option(
        "--log-level",
        type=click.Choice(LOG_LEVELS, case_sensitive=False),
        help="Log level (default INFO).",
    )(fn)
    return click.option("--verbose", "-v", is_flag=True, help="Log at DEBUG level.")(fn)


@click.command()
@app_argument
@click.option("--queues", "-q", help="Comma-separated queues to serve (default: all).")
@click.option(
    "--concurrency", "-c", type=click.IntRange(min=1), help="Jobs run at once (default: setting)."
)
@click.option("--burst", is_flag=True, help="Stop once no job is due instead of waiting for more.")
@click.option(
    "--no-scheduler",
    is_flag=True,
    help="Do not fire the app's schedules here (run `underway scheduler APP` elsewhere). "
    "A --burst worker never fires them.",
)
@logging_options
def worker(
    app_path: str,
    queues: str | None,
    concurrency: int | None,
    burst: bool,
    no_scheduler: bool,
    verbose: bool,
    log_level: str | None,
) -> None:
    """Run a worker for APP until SIGTERM/SIGINT (or, with --burst, until no job is due).

    Unless --no-scheduler (or --burst) is given, it also fires APP's schedules.
    The first SIGTERM lets running jobs finish within shutdown_grace_seconds; a second one
    hands them back at once.
    """
    app = load_app(app_path)
    configure_logging(verbose, log_level)
    names = [q.strip() for q in queues.split(",") if q.strip()] if queues else None
    if app.schedules and (no_scheduler or burst):
        log.info(
            "this worker fires none of the app's %d schedules (%s)",
            len(app.schedules),
            "--no-scheduler" if no_scheduler else "--burst",
        )
    try:
        app.run_worker(
            queues=names,
            concurrency=concurrency,
            burst=burst,
            scheduler=False if no_scheduler else None,
        )
    finally:
        app.close()
    exit_if_threads_stuck()


@click.command()
@app_argument
@logging_options
def scheduler(app_path: str, verbose: bool, log_level: str | None) -> None:
    """Fire APP's schedules (and run no jobs) until SIGTERM/SIGINT.

    Workers fire schedules too, unless started with --no-scheduler; any number of schedulers
    and workers may run: each slot becomes one job.
    """
    app = load_app(app_path)
    if not app.schedules:
        app.close()
        raise click.ClickException(
            f"{app_path} defines no schedules (@app.periodic or app.schedule); "
            "there is nothing for a scheduler to do"
        )
    configure_logging(verbose, log_level)
    try:
        app.run_scheduler()
    finally:
        app.close()
    log.info("scheduler stopped")


def configure_logging(verbose: bool, log_level: str | None) -> None:
    """INFO to stderr with time, level and logger, unless the app configured logging itself;
    an explicit level applies either way."""
    level = "DEBUG" if verbose else (log_level or "").upper() or None
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level or "INFO", format=LOG_FORMAT, stream=sys.stderr)
    elif level:
        logging.getLogger("underway").setLevel(level)


def _stuck_task_threads(settle: float = 1.0) -> list[threading.Thread]:
    """Sync task threads still alive after the worker stopped:
    a thread cannot be killed, and one that ignores `ctx.cancelled` would hang the exit.

    Threads get up to `settle` seconds to end first: a task that noticed the stop may still be
    returning, and the worker's idle pool threads end only once they see the pool shut down.
    Counting those would make a clean stop look stuck."""
    deadline = time.monotonic() + settle
    alive = [
        t
        for t in threading.enumerate()
        if t.is_alive() and t.name.startswith("underway-task") and not t.daemon
    ]
    for thread in alive:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [t for t in alive if t.is_alive()]


def exit_if_threads_stuck(code: int = 0) -> None:
    """Exit the process at once (with `code`) when task threads are still running; return
    otherwise."""
    stuck = _stuck_task_threads()
    if not stuck:
        return
    log.warning(
        "%d task thread(s) still running after the worker stopped (their jobs were handed "
        "back); exiting without waiting for them",
        len(stuck),
    )
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
