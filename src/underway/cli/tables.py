"""The rich tables the commands print: jobs, one job's fields and attempts, stats, queues,
schedules and workers."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..model import (
    AttemptInfo,
    Change,
    Job,
    JobError,
    QueueInfo,
    RunStats,
    ScheduleInfo,
    Stats,
    Status,
    WorkerInfo,
)
from ..secret import shown
from .render import (
    is_unicode,
    local_time,
    progress_text,
    relative,
    status_text,
    styled,
    styled_state,
    took,
)

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Table
    from rich.text import Text

# --- jobs list ------------------------------------------------------------------------------

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
    unicode = is_unicode(console)
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


# --- one job --------------------------------------------------------------------------------


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
        return progress_text(value, is_unicode(console))
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
        value = shown(value) if name == "args" else value  # no secret, no credential
        return Text(json.dumps(value, ensure_ascii=False, indent=2))
    return Text(str(value))


# --- stats ----------------------------------------------------------------------------------


def stats_tables(stats: Stats) -> list[Table]:
    """Jobs by status; per task and per queue; and how the runs of each task and schedule
    went."""
    from rich.table import Table

    statuses = [s.value for s in Status]
    overall = Table(title="jobs by status", title_justify="left", header_style="bold")
    overall.add_column("status")
    overall.add_column("jobs", justify="right")
    for status in statuses:
        overall.add_row(styled(status), str(stats.by_status.get(status, 0)))
    overall.add_row("[dim]pending: scheduled[/]", str(stats.scheduled))
    overall.add_row("[dim]pending: retrying[/]", str(stats.retrying))
    overall.add_row("[bold]total[/]", str(stats.total))
    tables = [overall]
    groups_by = [("per task", stats.by_task), ("per queue", stats.by_queue)]
    if stats.by_tenant and stats.tenant is None:
        groups_by.append(("per tenant", stats.by_tenant))
    for title, groups in groups_by:
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
    now = datetime.now(UTC)
    for name, run in sorted(runs.items()):
        table.add_row(
            name,
            styled_state(run.state),
            str(run.runs),
            str(run.failures),
            str(run.consecutive_failures),
            relative(run.last_run, now) if run.last_run else "-",
            styled(run.last_status) if run.last_status else "-",
            took(run.last_duration),
            took(run.average_duration),
        )
    return table


# --- queues ---------------------------------------------------------------------------------


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


# --- schedules ------------------------------------------------------------------------------


def schedules_table(found: Sequence[ScheduleInfo]) -> Table:
    """One row per schedule: what it runs and when, and how its runs went."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(header_style="bold")
    for column in ("schedule", "task", "tenant", "rule", "state", "next run", "last run"):
        table.add_column(column)
    for column in ("fired", "runs", "failures", "last took", "average"):
        table.add_column(column, justify="right")
    now = datetime.now(UTC)
    for info in found:
        name = escape(info.name)
        if not info.registered:
            name += " [dim](not in this app)[/]"
        table.add_row(
            name,
            escape(info.task),
            _tenants(info),
            escape(info.rule),
            styled_state(info.state),
            _next_run(info, now),
            relative(info.last_run, now) if info.last_run else "-",
            str(info.run_count),
            str(info.stats.runs),
            f"[bold red]{info.stats.failures}[/]" if info.stats.failures else "0",
            took(info.stats.last_duration),
            took(info.stats.average_duration),
        )
    return table


def _tenants(info: ScheduleInfo) -> str:
    """One tenant, the tenants a schedule runs for each, or the function that lists them."""
    from rich.markup import escape

    if info.tenants is not None:
        return escape("each of " + ", ".join(info.tenants))
    if info.tenants_from is not None:
        return escape(f"each of {info.tenants_from}()")
    return escape(info.tenant) if info.tenant else "[dim]-[/]"


def _next_run(info: ScheduleInfo, now: datetime) -> str:
    if info.paused:
        return "[dim]paused[/]"
    if info.next_run is not None:  # already passed: a slot due now that no scheduler fired yet
        return relative(info.next_run, now) if info.next_run > now else "now"
    if info.registered:  # defined in the app, but no scheduler has picked it up yet
        return "[dim]once a scheduler runs[/]"
    return "-"


# --- attempts and workers ---------------------------------------------------------------------


def attempts_table(attempts: Sequence[AttemptInfo]) -> Table:
    """Every attempt of one job, oldest first."""
    from rich.table import Table

    now = datetime.now(UTC)
    table = Table(header_style="bold", title="attempts", title_justify="left")
    for name in ("#", "outcome", "started", "took", "worker", "error"):
        table.add_column(name, justify="right" if name in ("#", "took") else "left")
    for a in attempts:
        outcome = styled(a.outcome) if a.outcome else styled("running")
        error = "" if a.error is None else f"{a.error.type}: {a.error.message}"
        table.add_row(
            str(a.number), outcome, relative(a.started_at, now), took(a.duration),
            (a.worker_id or "")[:12], error[:_MESSAGE_MAX],
        )  # fmt: skip
    return table


def change_line(change: Change, console: Console) -> Text:
    """One change as `jobs watch` prints it: when, what, which job, and where it stands."""
    from rich.text import Text

    job = change.job
    line = Text(f"{local_time(change.at)}  ")
    line.append(f"{change.kind.value:<16}", style="bold")
    line.append(f" {job.id}  {job.task}  ")
    line.append_text(status_text(job, views=False))
    if job.progress is not None:
        line.append("  ")
        line.append_text(progress_text(job.progress, is_unicode(console)))
    if job.status_message:
        line.append(f"  {job.status_message[:_MESSAGE_MAX]}")
    return line


def workers_table(found: Sequence[WorkerInfo]) -> Table:
    """The live workers, with what each runs now."""
    from rich.table import Table

    now = datetime.now(UTC)
    table = Table(header_style="bold")
    names = ("worker", "host", "pid", "queues", "running", "started", "last beat", "clock")
    for name in names:
        table.add_column(name, justify="right" if name in ("pid", "running", "clock") else "left")
    for w in found:
        queues = ",".join(w.queues) if w.queues else "all"
        # against the store's clock; SQLite's is each process's own
        clock = "-" if w.clock_skew is None else f"{w.clock_skew:+.2f} s"
        table.add_row(
            w.id[:12], w.host, str(w.pid), queues, f"{w.running}/{w.concurrency}",
            relative(w.started_at, now), relative(w.last_beat_at, now), clock,
        )  # fmt: skip
    return table
