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
@click.option(
    "--dashboard/--no-dashboard",
    default=True,
    show_default=True,
    help="Serve the dashboard on a free loopback port while the tour runs.",
)
@click.option(
    "--linger",
    type=click.FloatRange(0, 3600),
    default=None,
    help="Keep the dashboard up this many seconds after the tour  [default: 30 in a "
    "terminal, else 0].",
)
def demo(db: str, seconds: float, plain: bool, dashboard: bool, linger: float | None) -> None:
    """A tour of underway on a SQLite file, told with moments of the five applications in
    examples/: progress, retries, the dead-letter queue, cancellation, tenants, delays,
    priorities and unique keys, live in the terminal and in the browser (the dashboard's
    address is printed first)."""
    from .tour import run_demo

    code = run_demo(db, seconds=seconds, plain=plain, dashboard=dashboard, linger=linger)
    exit_if_threads_stuck(code)
    sys.exit(code)
