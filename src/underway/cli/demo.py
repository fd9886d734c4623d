"""`underway demo`: the built-in tour (tour.py, next to this file) from the command line.

The tour is imported only when the command runs: loading it builds its app, which reads
UNDERWAY_DATABASE_URL, and no other command should depend on that."""

from __future__ import annotations

import sys

import click

from .worker import exit_if_threads_stuck


@click.command()
@click.option(
    "--db",
    default="underway-demo.db",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="SQLite file for the tour; recreated on every run.",
)
@click.option(
    "--seconds",
    type=click.FloatRange(2, 600),
    default=10.0,
    show_default=True,
    help="About how long the tour takes; task durations scale with it.",
)
@click.option("--plain", is_flag=True, help="Print progress lines instead of a live table.")
def demo(db: str, seconds: float, plain: bool) -> None:
    """A tour of underway on a SQLite file: progress, retries, the dead-letter queue,
    cancellation, schedules, priorities and unique keys, live."""
    from .tour import run_demo

    code = run_demo(db, seconds=seconds, plain=plain)
    exit_if_threads_stuck(code)
    sys.exit(code)
