"""The `underway` command line: thin commands over `App`.

    underway worker myproject.jobs:app --queues default,bulk --concurrency 10
    underway scheduler myproject.jobs:app
    underway jobs myproject.jobs:app list --status failed
    underway jobs myproject.jobs:app retry --all-failed
    underway queues myproject.jobs:app pause bulk
    underway schedules myproject.jobs:app list
    underway workers myproject.jobs:app
    underway jobs myproject.jobs:app watch --job ID
    underway prune myproject.jobs:app --older-than 3d
    underway migrate myproject.jobs:app
    underway demo

APP is `module:attribute`, as with uvicorn. click parses the commands; rich draws the tables and
is imported only when something is drawn, so `import underway` needs neither.

One module per concept: loading.py (the APP argument), worker.py (the worker and scheduler
processes), jobs.py, queues.py, schedules.py, workers.py, maintenance.py (migrate, prune), demo.py;
render.py and tables.py draw; durations.py reads `3d`-style durations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

try:
    import click
except ImportError:  # pragma: no cover - the console script is useless without it
    raise SystemExit(
        "the underway command line needs click and rich: pip install 'underway[cli]'"
    ) from None

from ..errors import UnderwayError
from .demo import demo
from .durations import format_duration, parse_duration
from .jobs import jobs
from .loading import load_app
from .maintenance import migrate, prune
from .queues import queues
from .render import STATUS_STYLES, job_to_dict, make_console, progress_text, status_text
from .schedules import schedules
from .worker import scheduler, worker
from .workers import workers


class _Group(click.Group):
    """Turns the library's own errors into a one-line message and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UnderwayError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="underway", prog_name="underway")
def cli() -> None:
    """underway: background jobs on SQLite or PostgreSQL.

    APP is the `module:attribute` of your underway.App, for example `myproject.jobs:app`;
    the current directory is importable.
    """


for _command in (worker, scheduler, jobs, queues, schedules, workers, prune, migrate, demo):
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None, prog_name: str | None = None) -> None:
    """The console script `underway` (and `python -m underway`)."""
    cli.main(args=list(argv) if argv is not None else None, prog_name=prog_name)


__all__ = [
    "STATUS_STYLES",
    "cli",
    "format_duration",
    "job_to_dict",
    "load_app",
    "main",
    "make_console",
    "parse_duration",
    "progress_text",
    "status_text",
]
