"""The `underway` command line: thin commands over `App`.

    underway worker myproject.jobs:app --queues default,bulk --concurrency 10
    underway jobs myproject.jobs:app list --status failed
    underway jobs myproject.jobs:app retry --all-failed
    underway queues myproject.jobs:app pause bulk
    underway prune myproject.jobs:app --older-than 3d
    underway migrate myproject.jobs:app
    underway demo

APP is `module:attribute`, as with uvicorn. click parses the commands; rich draws the tables and
is imported only when something is drawn, so `import underway` needs neither.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

try:
    import click
except ImportError:  # pragma: no cover - the console script is useless without it
    raise SystemExit(
        "the underway command line needs click and rich: pip install 'underway[cli]'"
    ) from None

from .app import App
from .errors import JobNotFound, UnderwayError
from .model import Job, JobError, QueueInfo, RunStats, Stats, Status, View

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Table
    from rich.text import Text

STATUS_STYLES: dict[str, str] = {
    Status.PENDING: "yellow",
    Status.RUNNING: "bold cyan",
    Status.COMPLETED: "green",
    Status.FAILED: "bold red",
    Status.CANCELLED: "magenta",
}
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


# --- the root group -------------------------------------------------------------------------


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


def main(argv: Sequence[str] | None = None, prog_name: str | None = None) -> None:
    """The console script `underway` (and `python -m underway`)."""
    cli.main(args=list(argv) if argv is not None else None, prog_name=prog_name)


# --- loading the app ------------------------------------------------------------------------


def load_app(path: str) -> App:
    """Import `module:attribute` (the current directory first on sys.path) and check that it
    is an underway.App. Raises click.BadParameter with a plain explanation otherwise."""
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise click.BadParameter(
            f"{path!r} is not of the form module:attribute (for example myproject.jobs:app)",
            param_hint="APP",
        )
    if not all(part.isidentifier() for part in module_name.split(".")):
        dotted = module_name.removesuffix(".py").strip("./").replace("/", ".")
        raise click.BadParameter(
            f"{module_name!r} is not a module name; write it as Python imports it, "
            f"for example {dotted or 'myproject.jobs'}:{attribute}",
            param_hint="APP",
        )
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise click.BadParameter(
                f"cannot import {module_name!r}: there is no such module in {cwd} or on sys.path",
                param_hint="APP",
            ) from None
        raise  # the module exists but imports something that does not: show where
    value: Any = module
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise click.BadParameter(
                f"module {module_name!r} has no attribute {attribute!r}", param_hint="APP"
            ) from None
    if not isinstance(value, App):
        raise click.BadParameter(
            f"{path} is {_a(type(value).__name__)}, not an underway.App", param_hint="APP"
        )
    return value


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1].lower() in "aeiou" else f"a {noun}"


class _AppRef:
    """The APP argument of a group, imported only when a command needs it (so that
    `underway jobs APP list --help` works even when APP does not)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._app: App | None = None

    @property
    def app(self) -> App:
        if self._app is None:
            self._app = load_app(self.path)
        return self._app

    def close(self) -> None:
        if self._app is not None:
            self._app.close()


# --- worker ---------------------------------------------------------------------------------


@cli.command()
@click.argument("app_path", metavar="APP", envvar="UNDERWAY_APP")
@click.option("--queues", "-q", help="Comma-separated queues to serve (default: all).")
@click.option(
    "--concurrency", "-c", type=click.IntRange(min=1), help="Jobs run at once (default: setting)."
)
@click.option("--burst", is_flag=True, help="Stop once no job is due instead of waiting for more.")
@click.option("--verbose", "-v", is_flag=True, help="Log at DEBUG level.")
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    help="Log level (default INFO).",
)
def worker(
    app_path: str,
    queues: str | None,
    concurrency: int | None,
    burst: bool,
    verbose: bool,
    log_level: str | None,
) -> None:
    """Run a worker for APP until SIGTERM/SIGINT (or, with --burst, until no job is due).

    The first SIGTERM lets running jobs finish within shutdown_grace_seconds; a second one
    hands them back at once.
    """
    app = load_app(app_path)
    level = "DEBUG" if verbose else (log_level or "").upper() or None
    _configure_logging(level)
    names = [q.strip() for q in queues.split(",") if q.strip()] if queues else None
    try:
        app.run_worker(queues=names, concurrency=concurrency, burst=burst)
    finally:
        app.close()
    _exit_if_threads_stuck()


def _configure_logging(level: str | None) -> None:
    """INFO to stderr with time, level and logger, unless the app configured logging itself;
    an explicit level applies either way."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level or "INFO", format=LOG_FORMAT, stream=sys.stderr)
    elif level:
        logging.getLogger("underway").setLevel(level)


def _stuck_task_threads(settle: float = 1.0) -> list[threading.Thread]:
    """Sync task threads still alive after the worker stopped (see Worker.abandoned_threads):
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


def _exit_if_threads_stuck(code: int = 0) -> None:
    stuck = _stuck_task_threads()
    if not stuck:
        return
    logging.getLogger("underway.cli").warning(
        "%d task thread(s) still running after the worker stopped (their jobs were handed "
        "back); exiting without waiting for them",
        len(stuck),
    )
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# --- migrate --------------------------------------------------------------------------------


@cli.command()
@click.argument("app_path", metavar="APP", envvar="UNDERWAY_APP")
def migrate(app_path: str) -> None:
    """Create or upgrade APP's schema and print its version."""
    app = load_app(app_path)
    try:
        version = app.migrate()
    finally:
        app.close()
    click.echo(f"schema version {version} ({_safe_url(app.settings.database_url)})")


def _safe_url(url: str) -> str:
    """The URL without its password."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url


# --- jobs -----------------------------------------------------------------------------------


@cli.group()
@click.argument("app_path", metavar="APP", envvar="UNDERWAY_APP")
@click.pass_context
def jobs(ctx: click.Context, app_path: str) -> None:
    """Inspect and control APP's jobs: list, show, cancel, retry, stats."""
    ref = _AppRef(app_path)
    ctx.obj = ref
    ctx.call_on_close(ref.close)


@jobs.command("list")
@click.option("--status", type=click.Choice([s.value for s in Status]), help="Only this status.")
@click.option("--task", help="Only jobs of this task name.")
@click.option("--queue", help="Only jobs in this queue.")
@click.option("--tenant", help="Only jobs of this tenant.")
@click.option(
    "--view",
    type=click.Choice([v.value for v in View]),
    help="scheduled: pending, due later; retrying: pending after a failed attempt.",
)
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--cursor", help="Continue after the previous page (its 'next cursor').")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_obj
def list_command(
    ref: _AppRef,
    status: str | None,
    task: str | None,
    queue: str | None,
    tenant: str | None,
    view: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """List jobs, newest first."""
    page = ref.app.list_jobs(
        status=status,
        task=task,
        queue=queue,
        tenant=tenant,
        view=view,
        limit=limit,
        cursor=cursor,
    )
    if as_json:
        for job in page.jobs:
            click.echo(json.dumps(job_to_dict(job), ensure_ascii=False))
        if page.next_cursor:
            click.echo(f"next cursor: {page.next_cursor}", err=True)
        return
    console = make_console()
    if page.jobs:
        console.print(jobs_table(page.jobs, console))
    else:
        console.print(
            "no jobs"
            + (" match these filters" if (status or task or queue or tenant or view) else "")
        )
    if page.next_cursor:
        console.print(f"more jobs: next cursor {page.next_cursor} (pass --cursor to see them)")


@jobs.command("show")
@click.argument("job_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="The job as one JSON object.")
@click.pass_obj
def show_command(ref: _AppRef, job_id: str, as_json: bool) -> None:
    """Show every field of one job, with its error and traceback."""
    job = ref.app.get_job(job_id)
    if job is None:
        raise JobNotFound(f"no job with id {job_id}")
    if as_json:
        click.echo(json.dumps(job_to_dict(job), ensure_ascii=False, indent=2))
        return
    console = make_console()
    console.print(job_detail(job, console))
    if job.error is not None and job.error.traceback:
        from rich.text import Text

        console.print(Text("traceback:", style="bold"))
        console.print(Text(job.error.traceback.rstrip()), soft_wrap=True)


@jobs.command("cancel")
@click.argument("job_ids", metavar="ID...", nargs=-1, required=True)
@click.pass_context
def cancel_command(ctx: click.Context, job_ids: tuple[str, ...]) -> None:
    """Cancel jobs: a pending job never runs; a running one is stopped by its worker."""
    ref: _AppRef = ctx.obj
    failures = 0
    for job_id in job_ids:
        try:
            job = ref.app.cancel(job_id)
        except UnderwayError as exc:
            failures += 1
            click.echo(f"Error: {exc}", err=True)
            continue
        if job.status is Status.CANCELLED:
            click.echo(f"{job.id} cancelled")
        else:
            click.echo(f"{job.id} cancel requested: it is {job.status}; its worker will stop it")
    if failures:
        ctx.exit(1)


@jobs.command("retry")
@click.argument("job_ids", metavar="[ID...]", nargs=-1)
@click.option("--all-failed", is_flag=True, help="Retry every failed (dead-letter) job.")
@click.option("--task", help="With --all-failed: only this task's jobs.")
@click.option("--queue", help="With --all-failed: only this queue's jobs.")
@click.pass_context
def retry_command(
    ctx: click.Context,
    job_ids: tuple[str, ...],
    all_failed: bool,
    task: str | None,
    queue: str | None,
) -> None:
    """Run failed or cancelled jobs again (same id, attempts reset)."""
    ref: _AppRef = ctx.obj
    if all_failed == bool(job_ids):
        raise click.UsageError("give job ids or --all-failed (not both)")
    if (task or queue) and not all_failed:
        raise click.UsageError("--task and --queue only apply with --all-failed")
    if all_failed:
        _retry_all_failed(ctx, ref.app, task, queue)
        return
    failures = 0
    for job_id in job_ids:
        try:
            job = ref.app.retry(job_id)
        except UnderwayError as exc:
            failures += 1
            click.echo(f"Error: {exc}", err=True)
            continue
        click.echo(f"{job.id} {job.status} again")
    if failures:
        ctx.exit(1)


def _retry_all_failed(ctx: click.Context, app: App, task: str | None, queue: str | None) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    ids: list[uuid.UUID] = []
    cursor: str | None = None
    while True:
        page = app.list_jobs(
            status=Status.FAILED, task=task, queue=queue, limit=1000, cursor=cursor
        )
        ids.extend(job.id for job in page.jobs)
        cursor = page.next_cursor
        if cursor is None:
            break
    if not ids:
        click.echo("no failed jobs to retry")
        return
    problems: list[str] = []
    progress = Progress(
        TextColumn("retrying failed jobs"),
        BarColumn(),
        MofNCompleteColumn(),
        console=make_console(stderr=True),
    )
    with progress:
        bar = progress.add_task("retry", total=len(ids))
        for job_id in ids:
            try:
                app.retry(job_id)
            except UnderwayError as exc:
                problems.append(str(exc))
            progress.advance(bar)
    click.echo(f"retried {len(ids) - len(problems)} of {len(ids)} failed jobs")
    for problem in problems:
        click.echo(f"Error: {problem}", err=True)
    if problems:
        ctx.exit(1)


@jobs.command("stats")
@click.option("--json", "as_json", is_flag=True, help="The counts as one JSON object.")
@click.pass_obj
def stats_command(ref: _AppRef, as_json: bool) -> None:
    """Counts of jobs by status, per task and per queue."""
    stats = ref.app.stats()
    if as_json:
        data = dataclasses.asdict(stats)
        data["total"] = stats.total
        click.echo(json.dumps(data, default=str, indent=2))
        return
    console = make_console()
    for table in stats_tables(stats):
        console.print(table)


# --- prune ----------------------------------------------------------------------------------

DURATION_UNITS: dict[str, int] = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)([wdhms]?)")
_DURATION_EXAMPLES = "for example 90s, 15m, 3h, 3d, 2w or 1h30m"
_LONGEST = 1000 * 365 * 86_400.0  # beyond any retention, and within what the stores can count


def parse_duration(text: str) -> float:
    """Seconds in `text`: a number with a unit (s, m, h, d, w), several of them (`1h30m`), or
    plain seconds (`600`). Raises ValueError naming the accepted forms."""
    compact = text.strip().lower().replace(" ", "")
    parts = list(_DURATION_PART.finditer(compact))
    if not compact or "".join(p[0] for p in parts) != compact:
        raise ValueError(f"{text!r} is not a duration ({_DURATION_EXAMPLES})")
    if len(parts) > 1 and not all(p[2] for p in parts):
        raise ValueError(f"{text!r} mixes numbers with and without units ({_DURATION_EXAMPLES})")
    seconds = sum(float(p[1]) * DURATION_UNITS[p[2] or "s"] for p in parts)
    if seconds > _LONGEST:
        raise ValueError(f"{text!r} is longer than 1000 years")
    return seconds


def format_duration(seconds: float) -> str:
    """The largest units first: `1w`, `3d`, `1h30m`, `1m30s`, `0.5s`."""
    out: list[str] = []
    rest = max(seconds, 0.0)
    for unit, size in DURATION_UNITS.items():
        if unit == "s":
            break
        count = int(rest // size)
        if count:
            out.append(f"{count}{unit}")
            rest -= count * size
    if round(rest, 3) or not out:
        out.append(f"{round(rest, 3):g}s")
    return "".join(out)


def _duration_option(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


@cli.command()
@click.argument("app_path", metavar="APP", envvar="UNDERWAY_APP")
@click.option(
    "--older-than",
    metavar="DURATION",
    callback=_duration_option,
    help="Delete jobs that finished longer ago than this: 90s, 15m, 3h, 3d, 2w, 1h30m "
    "(default: the app's retention_seconds setting, 7d unless changed).",
)
@click.option("--include-failed", is_flag=True, help="Delete failed jobs (the dead letters) too.")
def prune(app_path: str, older_than: float | None, include_failed: bool) -> None:
    """Delete APP's finished jobs: completed and cancelled ones (and failed ones with
    --include-failed) that finished longer ago than --older-than. Pending and running jobs
    are never touched."""
    app = load_app(app_path)
    age = app.settings.retention_seconds if older_than is None else older_than
    try:
        deleted = app.prune(older_than=age, include_failed=include_failed)
    finally:
        app.close()
    kinds = "completed, cancelled or failed" if include_failed else "completed or cancelled"
    noun = "job" if deleted == 1 else "jobs"
    source = "; the app's retention_seconds" if older_than is None else ""
    click.echo(
        f"deleted {deleted} {noun} ({kinds}, finished more than {format_duration(age)} ago{source})"
    )


# --- queues ---------------------------------------------------------------------------------

_NO_LIMIT = ("none", "off", "unlimited")


def _limit_argument(ctx: click.Context, param: click.Parameter, value: str) -> int | None:
    """A concurrency limit: a whole number >= 0, or `none` to remove it."""
    text = value.strip().lower()
    if text in _NO_LIMIT:
        return None
    try:
        limit = int(text)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a whole number or 'none'", ctx, param) from None
    if limit < 0:
        raise click.BadParameter(
            f"{limit} is negative; give 0 or more, or 'none' for no limit", ctx, param
        )
    return limit


def _queue_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value.strip():
        raise click.BadParameter("a queue name cannot be empty", ctx, param)
    return value


@cli.group("queues")
@click.argument("app_path", metavar="APP", envvar="UNDERWAY_APP")
@click.pass_context
def queues_group(ctx: click.Context, app_path: str) -> None:
    """List APP's queues; pause, resume and limit them (for every worker at once)."""
    ref = _AppRef(app_path)
    ctx.obj = ref
    ctx.call_on_close(ref.close)


@queues_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per queue per line.")
@click.pass_obj
def queues_list(ref: _AppRef, as_json: bool) -> None:
    """Every queue that has jobs or controls: paused or not, its concurrency limit, and its
    jobs by status."""
    found = ref.app.queues()
    if as_json:
        for queue in found:
            click.echo(json.dumps(dataclasses.asdict(queue), ensure_ascii=False))
        return
    console = make_console()
    if not found:
        console.print("no queues yet: no jobs were enqueued and no queue was paused or limited")
        return
    console.print(queues_table(found))


@queues_group.command("pause")
@click.argument("name", callback=_queue_name)
@click.pass_obj
def queues_pause(ref: _AppRef, name: str) -> None:
    """Stop every worker from starting NAME's jobs (running ones finish; enqueueing goes on)."""
    _warn_if_new(ref.app, name)
    ref.app.pause_queue(name)
    click.echo(f"queue {name} paused: no worker starts its jobs until it is resumed")


@queues_group.command("resume")
@click.argument("name", callback=_queue_name)
@click.pass_obj
def queues_resume(ref: _AppRef, name: str) -> None:
    """Let workers start NAME's jobs again."""
    _warn_if_new(ref.app, name)
    ref.app.resume_queue(name)
    click.echo(f"queue {name} resumed")


@queues_group.command("limit", context_settings={"ignore_unknown_options": True})
@click.argument("name", callback=_queue_name)
@click.argument("limit", metavar="N|none", callback=_limit_argument)
@click.pass_obj
def queues_limit(ref: _AppRef, name: str, limit: int | None) -> None:
    """Run at most N of NAME's jobs at once across all workers; `none` removes the limit.
    Lowering it stops no running job: workers start no more until fewer than N run."""
    _warn_if_new(ref.app, name)
    ref.app.set_queue_concurrency(name, limit)
    if limit is None:
        click.echo(f"queue {name}: no concurrency limit")
    elif limit == 0:
        click.echo(f"queue {name}: limit 0, so no worker starts its jobs (like a pause)")
    else:
        noun = "job" if limit == 1 else "jobs"
        click.echo(f"queue {name}: at most {limit} {noun} running at once across all workers")


def _warn_if_new(app: App, name: str) -> None:
    """A queue nobody used yet is most likely a typo: say so, and go on."""
    known = [q.name for q in app.queues()]
    if name not in known:
        hint = f"; known queues: {', '.join(known)}" if known else ""
        click.echo(f"note: queue {name!r} has no jobs and no controls yet{hint}", err=True)


def queues_table(found: Sequence[QueueInfo]) -> Table:
    from rich.table import Table

    statuses = [s.value for s in Status]
    table = Table(header_style="bold")
    table.add_column("queue")
    table.add_column("paused")
    table.add_column("limit", justify="right")
    for status in statuses:
        table.add_column(status, justify="right")
    table.add_column("total", justify="right")
    for queue in found:
        paused = "[bold yellow]yes[/]" if queue.paused else "no"
        limit = "-" if queue.concurrency is None else str(queue.concurrency)
        counts = [str(queue.counts.get(s, 0)) for s in statuses]
        table.add_row(queue.name, paused, limit, *counts, str(sum(queue.counts.values())))
    return table


# --- demo -----------------------------------------------------------------------------------


@cli.command()
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
    from .demo import run_demo

    code = run_demo(db, seconds=seconds, plain=plain)
    _exit_if_threads_stuck(code)
    sys.exit(code)


# --- rendering (shared with the demo) -------------------------------------------------------


def make_console(stderr: bool = False) -> Console:
    """A rich console; when output is not a terminal (a pipe, CI) it is wide enough that job
    ids never wrap, and plain (no colour) unless FORCE_COLOR says otherwise."""
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 200
    return console


def job_to_dict(job: Job) -> dict[str, Any]:
    """The job as JSON-ready data: ids and times as strings, the error as an object."""
    return {f.name: _jsonable(getattr(job, f.name)) for f in dataclasses.fields(job)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, JobError):
        return {"message": value.message, "type": value.type, "traceback": value.traceback}
    if isinstance(value, Status):
        return value.value
    return value


def status_text(job: Job, now: datetime | None = None, views: bool = True) -> Text:
    """The status, coloured; with `views`, the pending views (scheduled, retrying) and a
    pending cancel request spelled out."""
    from rich.text import Text

    text = Text(job.status.value, style=STATUS_STYLES.get(job.status, ""))
    if not views:
        return text
    now = now or datetime.now(UTC)
    if job.status is Status.PENDING:
        if job.attempt > 0:
            text.append(" (retrying)", style="dim")
        elif job.run_at > now:
            text.append(" (scheduled)", style="dim")
    elif job.status is Status.RUNNING and job.cancel_requested:
        text.append(" (cancelling)", style="dim")
    return text


def progress_text(progress: float | None, unicode: bool = True, width: int = 10) -> Text:
    """A small bar and a percentage, e.g. `█████░░░░░  50%`; empty when there is no progress."""
    from rich.text import Text

    if progress is None:
        return Text("")
    fraction = min(max(progress, 0.0), 1.0)
    filled = round(fraction * width)
    full, empty = ("█", "░") if unicode else ("#", "-")
    style = "green" if fraction >= 1.0 else "cyan"
    return Text.assemble(
        (full * filled, style), (empty * (width - filled), "dim"), f" {fraction * 100:3.0f}%"
    )


def relative(moment: datetime, now: datetime | None = None) -> str:
    """`in 4.2 s`, `3 min ago`..."""
    seconds = (moment - (now or datetime.now(UTC))).total_seconds()
    amount = abs(seconds)
    if amount < 60:
        span = f"{amount:.1f} s"
    elif amount < 3600:
        span = f"{amount / 60:.0f} min"
    elif amount < 86400:
        span = f"{amount / 3600:.1f} h"
    else:
        span = f"{amount / 86400:.1f} d"
    return f"in {span}" if seconds > 0 else f"{span} ago"


def local_time(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _unicode(console: Console) -> bool:
    return console.encoding.lower().startswith("utf")


# The columns of `jobs list`: name, how much it matters (lower stays longer when the terminal is
# narrow), and for the columns that may shrink, the narrowest they get.
_LIST_COLUMNS: tuple[tuple[str, int, int | None], ...] = (
    ("id", 0, None),
    ("task", 2, 12),
    ("status", 1, None),
    ("attempt", 5, None),
    ("progress", 4, None),
    ("message", 3, 12),
    ("queue", 8, None),
    ("priority", 9, None),
    ("created", 7, None),
    ("run at", 6, None),
)
_ALWAYS = frozenset({"id", "task", "status"})
_MESSAGE_MAX = 60


def jobs_table(jobs: Sequence[Job], console: Console) -> Table:
    """The jobs as a table that fits the console: columns no job fills are left out, and on a
    narrow terminal the least useful go first (the id always stays whole)."""
    from rich.cells import cell_len
    from rich.table import Table

    now = datetime.now(UTC)
    unicode = _unicode(console)
    rows = [_list_cells(job, now, unicode) for job in jobs]
    natural = {
        name: max([cell_len(name)] + [row[name].cell_len for row in rows])
        for name, _, _ in _LIST_COLUMNS
    }
    natural["message"] = min(natural["message"], _MESSAGE_MAX)
    shown = [
        (name, rank, shrink)
        for name, rank, shrink in _LIST_COLUMNS
        if name in _ALWAYS or any(row[name].plain for row in rows)
    ]

    def narrowest(name: str, shrink: int | None) -> int:
        return min(natural[name], shrink) if shrink else natural[name]

    def needed(columns: list[tuple[str, int, int | None]]) -> int:
        return sum(narrowest(n, s) for n, _, s in columns) + 2 * (len(columns) - 1)

    while needed(shown) > console.width and len(shown) > len(_ALWAYS):
        least = max((c for c in shown if c[0] not in _ALWAYS), key=lambda c: c[1])
        shown.remove(least)
    widths = {name: narrowest(name, shrink) for name, _, shrink in shown}
    spare = console.width - needed(shown)
    for name in ("message", "task"):  # the flexible columns get what is left
        if name in widths:
            grow = min(spare, natural[name] - widths[name])
            widths[name] += grow
            spare -= grow
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name, _, _ in shown:
        table.add_column(
            name,
            width=widths[name],
            no_wrap=True,
            overflow="ellipsis",
            justify="right" if name in ("attempt", "priority") else "left",
        )
    for row in rows:
        table.add_row(*(row[name] for name, _, _ in shown))
    return table


def _list_cells(job: Job, now: datetime, unicode: bool) -> dict[str, Text]:
    from rich.text import Text

    scheduled = job.status is Status.PENDING and job.run_at > now
    return {
        "id": Text(str(job.id)),
        "task": Text(job.task),
        "status": status_text(job, now),
        "attempt": Text(f"{job.attempt}/{job.max_attempts}"),
        "progress": progress_text(job.progress, unicode),
        "message": Text(job.status_message or ""),
        "queue": Text(job.queue),
        "priority": Text(str(job.priority)),
        "created": Text(local_time(job.created_at)),
        "run at": Text(relative(job.run_at, now) if scheduled else ""),
    }


def job_detail(job: Job, console: Console) -> Table:
    """Every field of the job, one per row."""
    from rich.table import Table

    now = datetime.now(UTC)
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for f in dataclasses.fields(job):
        table.add_row(f.name.replace("_", " "), _field_value(job, f.name, now, console))
    return table


def _field_value(job: Job, name: str, now: datetime, console: Console) -> RenderableType:
    from rich.text import Text

    value = getattr(job, name)
    if name == "status":
        return status_text(job, now)
    if name == "progress" and value is not None:
        return progress_text(value, _unicode(console))
    if name == "attempt":
        return f"{job.attempt} of {job.max_attempts}"
    if value is None:
        return Text("-", style="dim")
    if isinstance(value, datetime):
        return f"{local_time(value)} ({relative(value, now)})"
    if isinstance(value, JobError):
        kind = f"{value.type}: " if value.type and not value.message.startswith(value.type) else ""
        return Text(f"{kind}{value.message}", style="red")
    if name in ("args", "payload", "result"):
        return Text(json.dumps(value, ensure_ascii=False, indent=2))
    return Text(str(value))


def stats_tables(stats: Stats) -> list[Table]:
    from rich.table import Table

    statuses = [s.value for s in Status]
    overall = Table(title="jobs by status", title_justify="left", header_style="bold")
    overall.add_column("status")
    overall.add_column("jobs", justify="right")
    for status in statuses:
        overall.add_row(_styled(status), str(stats.by_status.get(status, 0)))
    overall.add_row("[dim]pending: scheduled[/]", str(stats.scheduled))
    overall.add_row("[dim]pending: retrying[/]", str(stats.retrying))
    overall.add_row("[bold]total[/]", str(stats.total))
    tables = [overall]
    for title, groups in (("per task", stats.by_task), ("per queue", stats.by_queue)):
        table = Table(title=title, title_justify="left", header_style="bold")
        table.add_column(title.split()[-1])
        for status in statuses:
            table.add_column(status, justify="right")
        table.add_column("total", justify="right")
        for name, counts in sorted(groups.items()):
            row = [str(counts.get(s, 0)) for s in statuses]
            table.add_row(name, *row, str(sum(counts.values())))
        tables.append(table)
    for title, runs in (("runs per task", stats.tasks), ("runs per schedule", stats.schedules)):
        if runs:
            tables.append(run_stats_table(title, runs))
    return tables


def run_stats_table(title: str, runs: dict[str, RunStats]) -> Table:
    """How the retained runs of each task (or schedule) went: its state, how many runs and
    failures, the latest run, and durations."""
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    for column in (title.split()[-1], "state"):
        table.add_column(column)
    for column in ("runs", "failures", "failing streak", "last run", "last status"):
        table.add_column(column, justify="right" if column != "last status" else "left")
    table.add_column("last took", justify="right")
    table.add_column("average", justify="right")
    styles = {"running": "bold cyan", "failing": "bold red", "ok": "green", "idle": "dim"}
    now = datetime.now(UTC)
    for name, run in sorted(runs.items()):
        table.add_row(
            name,
            f"[{styles.get(run.state, '')}]{run.state}[/]",
            str(run.runs),
            str(run.failures),
            str(run.consecutive_failures),
            relative(run.last_run, now) if run.last_run else "-",
            _styled(run.last_status) if run.last_status else "-",
            _took(run.last_duration),
            _took(run.average_duration),
        )
    return table


def _took(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _styled(status: str) -> str:
    return f"[{STATUS_STYLES.get(status, '')}]{status}[/]"
