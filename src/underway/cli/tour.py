"""The built-in tour, `underway demo`: a worker runs in this process while a live table shows
every job's status, attempt, progress and message, then a summary says what happened and how to
look at the jobs afterwards.

The module-level `app` lets the job commands read the tour's database afterwards:

    underway jobs underway.cli.tour:app list                 # ./underway-demo.db
    UNDERWAY_DATABASE_URL=sqlite:////tmp/t.db underway jobs underway.cli.tour:app list

The tour is written against underway's public API only (the names `import underway` gives, and
`App`'s and `Worker`'s public methods), as any application would be: no store internals, no
SQL. rich is imported only when the tour runs; importing this module needs underway's command
line (click), as the commands that load it do.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import shlex
import shutil
import tempfile
import threading
import time
import uuid
from collections import deque
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from underway import (
    App,
    Backoff,
    ConfigurationError,
    Context,
    Job,
    Status,
    TaskClass,
    UnderwayError,
    Worker,
)

from .dashboard_server import dashboard_in_background
from .render import STATUS_STYLES, make_console, progress_text, status_text

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Table
    from rich.text import Text

DEFAULT_DB = "underway-demo.db"
DEFAULT_URL = f"sqlite:///{DEFAULT_DB}"
CONCURRENCY = 4
PACE_SECONDS = 6.5  # how long the tour takes at pace 1; --seconds scales every duration
TICK = 0.125  # the live table redraws about 8 times a second
# Quick reactions so the tour is lively: cancel requests are seen on the next heartbeat.
DEMO_SETTINGS: dict[str, Any] = {
    "poll_seconds": 0.1,
    "heartbeat_seconds": 0.25,
    "progress_flush_seconds": 0.1,
    "shutdown_grace_seconds": 1.0,
}
# A tour's database is well under a megabyte: a bigger file at --db is something else, and is
# not even copied to be looked at.
EARLIER_TOUR_MAX_BYTES = 64 * 1024 * 1024


# --- the tasks ------------------------------------------------------------------------------
# Each is a moment from the five applications underway was built for (examples/ rebuilds them
# whole): a file manager's folder scan and copy (004), an outreach tool's campaign sync, OAuth
# log-in, session cleanup and campaign monitor (000), and a document platform's classifier and
# per-tenant usage reports (001).


class ClassifierRejected(Exception):
    """The classifier could not read the document. Retryable as far as the task knows, so it
    is retried until its attempts are spent, then lands in the dead-letter queue."""


def scan_folder(ctx: Context, folder: str, files: int, seconds_each: float) -> dict[str, Any]:
    """Read every file's metadata, reporting progress, a message and the file it is on."""
    for done in range(1, files + 1):
        if ctx.wait_cancelled(seconds_each):
            return {"folder": folder, "scanned": done - 1}
        ctx.report_progress(done / files, f"scanned {done} of {files} files")
        ctx.set_payload({"file": f"{folder}/IMG_{done:04d}.jpg"})
    return {"folder": folder, "scanned": files}


def sync_campaigns(ctx: Context, account: str, seconds: float) -> dict[str, Any]:
    """Times out on its first two attempts, then succeeds."""
    ctx.report_status(f"attempt {ctx.job.attempt}: syncing campaigns with the outreach service")
    if ctx.wait_cancelled(seconds):
        return {}
    if ctx.job.attempt < 3:
        raise ConnectionError(f"the outreach service timed out for {account}")
    ctx.report_progress(1.0, "synced 6 of 6 steps")
    return {"account": account, "steps": 6}


def classify_document(ctx: Context, document: str, seconds: float) -> None:
    """Always rejected: after its last attempt it is a dead letter."""
    ctx.report_status(f"attempt {ctx.job.attempt}: classifying {document}")
    ctx.wait_cancelled(seconds)
    raise ClassifierRejected(f"the classifier could not read {document}")


class CopyFiles(TaskClass):
    """A long copy that checks `ctx.cancelled` between files (the tour cancels it), written as
    a task class like the file manager's."""

    name = "demo.copy_files"
    title = "Copy files"
    queue = "bulk"
    status_message = "waiting for a worker"

    def execute(self, ctx: Context, files: int, seconds_each: float) -> dict[str, Any]:
        for done in range(1, files + 1):
            if ctx.wait_cancelled(seconds_each):
                ctx.report_status(
                    f"stopped after {done - 1} of {files} files; partial copy removed"
                )
                return {"copied": done - 1}
            ctx.report_progress(done / files, f"copied {done} of {files} files")
        return {"copied": files}


def report_usage(ctx: Context, tenant: str, seconds: float) -> dict[str, Any]:
    """A tenant's usage for the billing service, in five steps with a message each."""
    steps = ("counting pages", "counting storage", "pricing", "signing", "sending to billing")
    for i, step in enumerate(steps):
        ctx.report_progress(i / len(steps), f"{step} for {tenant}")
        if ctx.wait_cancelled(seconds / len(steps)):
            return {}
    ctx.report_progress(1.0, f"usage of {tenant} reported")
    return {"tenant": tenant, "pages": 1_204}


def log_in_account(account: str, seconds: float) -> str:
    """A plain function (no ctx): callable directly, and enqueued with a high priority."""
    time.sleep(seconds)
    return f"{account} logged in; session stored"


def clean_up_sessions(ctx: Context, seconds: float) -> dict[str, Any]:
    """Enqueued twice with the same unique key: the second enqueue returns the first job."""
    for i in range(1, 5):
        if ctx.wait_cancelled(seconds / 4):
            return {}
        ctx.report_progress(i / 4, f"checked {i * 250} sessions")
    return {"expired": 37}


def monitor_campaigns(ctx: Context, campaigns: int, seconds: float) -> dict[str, Any]:
    """Enqueued with a delay (the monitor starts after boot): it waits as `pending
    (scheduled)` until its time."""
    ctx.report_status(f"checking {campaigns} campaigns against 5 thresholds")
    ctx.wait_cancelled(seconds)
    return {"campaigns": campaigns, "alerts": 0}


def build_app(url: str | None = None, pace: float = 1.0) -> App:
    """The tour's app on `url` (default: UNDERWAY_DATABASE_URL, else ./underway-demo.db);
    `pace` scales retry delays."""
    demo = App(url or os.environ.get("UNDERWAY_DATABASE_URL") or DEFAULT_URL, **DEMO_SETTINGS)
    quick = Backoff(base=0.5 * pace, factor=2.0, max=5.0 * pace, jitter=False)
    demo.task(name="demo.scan_folder", title="Scan folder")(scan_folder)
    demo.task(name="demo.sync_campaigns", title="Sync campaigns", max_attempts=5, retry=quick)(
        sync_campaigns
    )
    demo.task(
        name="demo.classify_document", title="Classify document", max_attempts=3, retry=quick
    )(classify_document)
    demo.task_class(CopyFiles)
    demo.task(name="demo.report_usage", title="Report usage", queue="billing")(report_usage)
    demo.task(name="demo.log_in_account", title="Log in account", queue="accounts")(log_in_account)
    demo.task(name="demo.clean_up_sessions", title="Clean up sessions")(clean_up_sessions)
    demo.task(name="demo.monitor_campaigns", title="Monitor campaigns", queue="monitor")(
        monitor_campaigns
    )
    return demo


app = build_app()
TASK_NAMES = frozenset(app.tasks)


# --- the tour -------------------------------------------------------------------------------


@dataclass
class Tour:
    """What the tour enqueued and what it has seen so far."""

    app: App
    pace: float
    path: Path
    started: float = field(default_factory=time.monotonic)
    roles: dict[str, Job] = field(default_factory=dict)
    jobs: list[Job] = field(default_factory=list)
    cancel_sent_at: float | None = None
    overtaken: int | None = None  # older jobs still waiting when the urgent one started
    events: EventLog | None = None
    worker_thread: threading.Thread | None = None

    def going(self, seconds: float) -> bool:
        """Keep showing: the worker runs and the time limit (a backstop) is not reached."""
        alive = self.worker_thread is None or self.worker_thread.is_alive()
        return alive and self.elapsed < _limit(seconds)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def scaled(self, seconds: float) -> float:
        """A duration of the tour at its pace (rounded, so job arguments stay readable)."""
        return round(seconds * self.pace, 3)

    def note(self, title: str, text: str) -> None:
        if self.events is not None:
            self.events.note(title, text)

    def enqueue_first_wave(self) -> None:
        tasks = self.app.tasks
        scan = tasks["demo.scan_folder"]
        self.roles["holidays"] = scan.options(title="Scan folder: holidays").enqueue(
            folder="holidays", files=12, seconds_each=self.scaled(0.3)
        )
        self.roles["sync"] = (
            tasks["demo.sync_campaigns"]
            .options(title="Sync campaigns: acme")
            .enqueue(account="acme", seconds=self.scaled(0.3))
        )
        self.roles["charge"] = (
            tasks["demo.classify_document"]
            .options(title="Classify document: scan-0042.pdf", tenant="globex")
            .enqueue(document="scan-0042.pdf", seconds=self.scaled(0.3))
        )
        self.roles["export"] = tasks["demo.copy_files"].enqueue(
            files=40, seconds_each=self.scaled(0.25)
        )
        self.roles["wedding"] = scan.options(title="Scan folder: wedding").enqueue(
            folder="wedding", files=16, seconds_each=self.scaled(0.3)
        )
        for tenant in ("acme", "globex", "initech"):
            tasks["demo.report_usage"].options(
                title=f"Report usage: {tenant}", tenant=tenant
            ).enqueue(tenant=tenant, seconds=self.scaled(1.2))
        cleanup = tasks["demo.clean_up_sessions"].options(key="session-cleanup")
        first = cleanup.enqueue(seconds=self.scaled(1.0))
        second = cleanup.enqueue(seconds=self.scaled(1.0))
        self.roles["index"], self.roles["index_again"] = first, second
        self.note(
            "Clean up sessions",
            f"enqueued twice with key 'session-cleanup': "
            f"{'the same job' if first.id == second.id else 'two jobs (unexpected)'} "
            f"{str(first.id)[:8]}",
        )
        self.roles["digest"] = (
            tasks["demo.monitor_campaigns"]
            .options(delay=self.scaled(6.0))
            .enqueue(campaigns=120, seconds=self.scaled(0.5))
        )

    def enqueue_urgent(self) -> None:
        waiting = sum(
            1 for j in self.jobs if j.status is Status.PENDING and j.run_at <= datetime.now(UTC)
        )
        self.roles["urgent"] = (
            self.app.tasks["demo.log_in_account"]
            .options(priority=10, title="Log in account (priority 10)")
            .enqueue(account="ada@example.com", seconds=self.scaled(0.3))
        )
        self.note(
            "Log in account (priority 10)",
            f"{waiting} jobs were waiting; priority 10 puts it first in line",
        )

    def step(self) -> bool:
        """One tick: enqueue on cue, cancel on cue, read every job. True when all are done."""
        if "urgent" not in self.roles and self.elapsed >= 1.5 * self.pace:
            self.enqueue_urgent()
        self.jobs = sorted(self.app.list_jobs(limit=200).jobs, key=lambda j: j.id)
        by_id = {job.id: job for job in self.jobs}
        export = by_id.get(self.roles["export"].id)
        if (
            export is not None
            and self.cancel_sent_at is None
            and export.status is Status.RUNNING
            and (export.progress or 0.0) >= 0.3
        ):
            self.cancel_sent_at = self.elapsed
            self.app.cancel(export.id)
            self.note(export.title, f"the tour cancels it at {export.progress or 0:.0%}")
        urgent = by_id.get(self.roles["urgent"].id) if "urgent" in self.roles else None
        if urgent is not None and self.overtaken is None and urgent.status is not Status.PENDING:
            now = datetime.now(UTC)
            self.overtaken = sum(
                1
                for j in self.jobs
                if j.status is Status.PENDING and j.id < urgent.id and j.run_at <= now
            )
        return "urgent" in self.roles and all(job.finished for job in self.jobs)


class EventLog:
    """Turns the job snapshots `app.on_update` delivers (from the worker's threads) into
    lines: enqueued, started, retrying, completed, failed, cancelled, and with `progress`
    each quarter of progress too."""

    def __init__(self, started: float, progress: bool) -> None:
        self.started = started
        self.progress = progress
        # job snapshots from on_update, and the tour's own notes, in the order they happened
        self.inbox: queue.SimpleQueue[tuple[float, Job | tuple[str, str]]] = queue.SimpleQueue()
        self.seen: dict[uuid.UUID, tuple[Status, int, bool, int]] = {}
        self.recent: deque[str] = deque(maxlen=6)
        self.pending_lines: list[str] = []

    def on_update(self, job: Job) -> None:
        self.inbox.put((time.monotonic() - self.started, job))

    def note(self, title: str, text: str) -> None:
        self.inbox.put((time.monotonic() - self.started, (title, text)))

    def _add(self, at: float, title: str, text: str) -> None:
        line = f"{at:5.1f} s  {title:<28}  {text}"
        self.recent.append(line)
        self.pending_lines.append(line)

    def drain(self) -> list[str]:
        """New lines since the last call."""
        while True:
            try:
                at, item = self.inbox.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, Job):
                text = self._describe(item)
                if text:
                    self._add(at, item.title, text)
            else:
                self._add(at, *item)
        lines, self.pending_lines = self.pending_lines, []
        return lines

    def _describe(self, job: Job) -> str | None:
        quarter = int((job.progress or 0.0) * 4)
        key = (job.status, job.attempt, job.cancel_requested, quarter)
        before = self.seen.get(job.id)
        self.seen[job.id] = key
        if before is None and job.status is Status.PENDING:
            return _enqueued(job)
        if before is None or before[:2] != key[:2]:
            return _transition(job)
        if job.cancel_requested and not before[2]:
            return "cancel requested; the worker stops it at its next heartbeat"
        if self.progress and quarter != before[3] and job.status is Status.RUNNING:
            return f"{job.progress or 0:4.0%}  {job.status_message or ''}".rstrip()
        return None


def _enqueued(job: Job) -> str:
    text = "enqueued"
    wait = (job.run_at - datetime.now(UTC)).total_seconds()
    if wait > 0.5:
        text += f", scheduled to run in {wait:.1f} s"
    if job.priority:
        text += f", priority {job.priority}"
    return text


def _transition(job: Job) -> str:
    error = job.error.message if job.error else ""
    if job.status is Status.RUNNING:
        return f"started (attempt {job.attempt} of {job.max_attempts})"
    if job.status is Status.PENDING:
        wait = max((job.run_at - datetime.now(UTC)).total_seconds(), 0.0)
        if error:
            return f"attempt {job.attempt} failed: {error}; retrying in {wait:.1f} s"
        return "back in the queue"
    if job.status is Status.COMPLETED:
        return f"completed: {_short(job.result)}"
    if job.status is Status.FAILED:
        return f"failed after {job.attempt} attempts: {error} -> dead-letter queue"
    at = f" at {job.progress:.0%}" if job.progress is not None else ""
    return f"cancelled{at}"


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- running it -----------------------------------------------------------------------------


def run_demo(
    db: str | os.PathLike[str] = DEFAULT_DB,
    seconds: float = 10.0,
    plain: bool = False,
    dashboard: bool = True,
    linger: float | None = None,
) -> int:
    """Run the tour on the SQLite file `db` (recreated), in about `seconds` seconds, with the
    dashboard served on loopback meanwhile (unless not `dashboard`) and for `linger` seconds
    after (default: 30 in a terminal, else 0). Returns the exit code: 0, 1 when the worker
    failed, or 130 when interrupted with Ctrl-C."""
    path = Path(db).resolve()
    _reset_database(path)
    pace = seconds / PACE_SECONDS
    demo = build_app(f"sqlite:///{path}", pace)
    _quiet_library_logs()
    console = make_console()
    live = console.is_terminal and not plain
    tour = Tour(demo, pace, path)
    tour.events = EventLog(tour.started, progress=not live)
    serving = dashboard_in_background(demo) if dashboard else nullcontext(None)
    try:
        with serving as url:
            if url is not None:
                console.print(f"[bold]dashboard:[/] {url}  (jobs move there live)")
            interrupted, failures = _show_with_worker(tour, tour.events, console, seconds, live)
            tour.jobs = sorted(demo.list_jobs(limit=200).jobs, key=lambda j: j.id)
            _print_summary(tour, console, interrupted, failures)
            if url is not None and not interrupted:
                _linger(console, url, (30.0 if live else 0.0) if linger is None else linger)
    finally:
        demo.close()
    return 130 if interrupted else 1 if failures else 0


def _linger(console: Console, url: str, seconds: float) -> None:
    """Keep the dashboard up a while after the tour, to look around (Ctrl-C ends it)."""
    if seconds <= 0:
        return
    console.print(f"the dashboard at {url} stays up for {seconds:g} s; Ctrl-C stops it")
    with suppress(KeyboardInterrupt):
        time.sleep(seconds)


def _show_with_worker(
    tour: Tour, events: EventLog, console: Console, seconds: float, live: bool
) -> tuple[bool, list[BaseException]]:
    """Enqueue and show the tour while a worker runs it on a thread of its own. Returns whether
    Ctrl-C interrupted it, and what stopped the worker with an error."""
    unsubscribe = tour.app.on_update(events.on_update)
    worker = Worker(tour.app, concurrency=CONCURRENCY)
    failures: list[BaseException] = []
    thread = threading.Thread(
        target=_run_worker, args=(worker, failures), name="underway-demo-worker", daemon=True
    )
    tour.worker_thread = thread
    interrupted = False
    try:
        tour.enqueue_first_wave()
        thread.start()
        if live:
            _run_live(tour, events, console, seconds)
        else:
            _run_plain(tour, events, console, seconds)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        worker.stop(now=True)
        thread.join(timeout=10)
        unsubscribe()
    return interrupted, failures


def _run_worker(worker: Worker, failures: list[BaseException]) -> None:
    try:
        asyncio.run(worker.run(handle_signals=False))
    except BaseException as exc:  # shown in the summary
        failures.append(exc)


def _limit(seconds: float) -> float:
    """The tour stops by itself at this point even if some job never finished."""
    return seconds * 3 + 10


def _run_live(tour: Tour, events: EventLog, console: Console, seconds: float) -> None:
    from rich.live import Live

    finished_at: float | None = None
    with Live(_render(tour, console), console=console, refresh_per_second=8) as live:
        while tour.going(seconds):
            done = tour.step()
            events.drain()
            live.update(_render(tour, console))
            if done:
                finished_at = finished_at or tour.elapsed
                if tour.elapsed - finished_at >= 0.5:  # let the final state show a moment
                    break
            time.sleep(TICK)


def _run_plain(tour: Tour, events: EventLog, console: Console, seconds: float) -> None:
    console.print(
        f"underway demo: a worker with {CONCURRENCY} slots on {tour.path} "
        "(not a terminal, so plain lines instead of a live table)"
    )
    while tour.going(seconds):
        done = tour.step()
        for line in events.drain():
            console.print(line, markup=False)
        if done:
            break
        time.sleep(TICK)


# --- the live table -------------------------------------------------------------------------


def _render(tour: Tour, console: Console) -> RenderableType:
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    events = tour.events.recent if tour.events else ()
    panel = Panel(Text("\n".join(events) or "starting..."), title="events", title_align="left")
    return Group(_job_table(tour, console), panel)


def _job_table(tour: Tour, console: Console) -> Table:
    from rich import box
    from rich.table import Table

    now = datetime.now(UTC)
    unicode = console.encoding.lower().startswith("utf")
    wide = console.width >= 120
    table = Table(
        title=f"underway demo  {tour.elapsed:5.1f} s   worker: {CONCURRENCY} slots   "
        f"db: {tour.path.name}",
        box=box.SIMPLE_HEAD,
        title_justify="left",
        header_style="bold",
    )
    _add_columns(table, console.width, wide)
    for job in tour.jobs:
        cells: list[RenderableType] = [job.title]
        if wide:
            cells += [job.queue, str(job.priority)]
        cells += [
            status_text(job, now, views=False),
            f"{job.attempt}/{job.max_attempts}",
            progress_text(job.progress, unicode, width=10 if wide else 5),
            _message(job, now),
        ]
        table.add_row(*cells)
    return table


def _add_columns(table: Table, width: int, wide: bool) -> None:
    # Fixed widths: rich squeezes no_wrap columns unpredictably (even to nothing) when a long
    # message does not fit, so the message gets exactly the room that is left.
    fixed = {"job": 30 if wide else 22, "status": 9, "att": 3, "progress": 16 if wide else 10}
    if wide:
        fixed |= {"queue": 7, "prio": 4}
    columns = len(fixed) + 1
    # each cell is padded by one space each side; the box adds a divider between columns and
    # an edge at both ends
    room = width - sum(fixed.values()) - 2 * columns - (columns - 1) - 2
    table.add_column("job", no_wrap=True, overflow="ellipsis", width=fixed["job"])
    if wide:
        table.add_column("queue", no_wrap=True, overflow="ellipsis", width=fixed["queue"])
        table.add_column("prio", justify="right", no_wrap=True, width=fixed["prio"])
    table.add_column("status", no_wrap=True, width=fixed["status"])
    table.add_column("att", justify="right", no_wrap=True, width=fixed["att"])
    table.add_column("progress", no_wrap=True, width=fixed["progress"])
    table.add_column("message", overflow="ellipsis", no_wrap=True, max_width=max(room, 10))


def _message(job: Job, now: datetime) -> Text:
    from rich.text import Text

    wait = (job.run_at - now).total_seconds()
    error = job.error.message if job.error else ""
    if job.status is Status.PENDING and job.attempt > 0:
        when = f"retry in {wait:.1f} s" if wait > 0 else "retry due"
        return Text(f"{when}: {error}" if error else when, style="dim")
    if job.status is Status.PENDING and wait > 0:
        return Text(f"runs in {wait:.1f} s", style="dim")
    if job.status is Status.FAILED and job.error:
        return Text(job.error.message, style="red")
    if job.status is Status.COMPLETED and job.status_message is None:
        return Text(_short(job.result), style="dim")
    return Text(job.status_message or "")


# --- the summary ----------------------------------------------------------------------------


def _print_summary(
    tour: Tour, console: Console, interrupted: bool, failures: list[BaseException]
) -> None:
    from rich.table import Table

    stats = tour.app.stats()
    console.print()
    unfinished = sum(1 for job in tour.jobs if not job.finished)
    if interrupted:
        headline = "interrupted"
    elif unfinished:
        headline = f"stopped with {unfinished} jobs unfinished"
    else:
        headline = "finished"
    console.print(f"[bold]underway demo {headline} after {tour.elapsed:.1f} s[/]")
    counts = Table(show_header=True, header_style="bold")
    for status in Status:
        counts.add_column(f"[{STATUS_STYLES[status]}]{status.value}[/]", justify="right")
    counts.add_row(*(str(stats.by_status.get(s.value, 0)) for s in Status))
    console.print(counts)
    for line in _story(tour):
        console.print(f"  - {line}", markup=False)
    for exc in failures:
        console.print(f"[red]the worker stopped with an error: {exc!r}[/]")
    _print_commands(tour, console)


def _story(tour: Tour) -> list[str]:
    """What each part of the tour showed, read back from the jobs themselves."""
    by_id = {job.id: job for job in tour.jobs}
    lines: list[str] = []

    def final(role: str) -> Job | None:
        job = tour.roles.get(role)
        return by_id.get(job.id) if job is not None else None

    dead = final("charge")
    if dead is not None and dead.status is Status.FAILED and dead.error:
        lines.append(
            f"dead letter: {dead.title} ({dead.id}) failed after {dead.attempt} attempts: "
            f"{dead.error.message}"
        )
    sync = final("sync")
    if sync is not None and sync.status is Status.COMPLETED:
        lines.append(
            f"retries: {sync.title} failed twice, then succeeded on attempt {sync.attempt}"
        )
    export = final("export")
    if export is not None and export.status is Status.CANCELLED:
        lines.append(
            f"cancelled mid-run: {export.title} at {export.progress or 0:.0%} ({export.id})"
        )
    urgent = final("urgent")
    if urgent is not None and tour.overtaken is not None:
        lines.append(
            f"priority: {urgent.title} was enqueued last and started ahead of "
            f"{tour.overtaken} older waiting jobs"
        )
    first, second = tour.roles.get("index"), tour.roles.get("index_again")
    if first is not None and second is not None:
        same = "the same job" if first.id == second.id else "two different jobs"
        lines.append(f"unique key: two enqueues with key 'session-cleanup' returned {same}")
    tenants = sorted(
        {job.tenant for job in tour.jobs if job.tenant and job.task == "demo.report_usage"}
    )
    if tenants:
        lines.append(f"tenants: usage reported per tenant ({', '.join(tenants)}), each job "
                     "carrying its tenant, as a tenant's API key would see it")  # fmt: skip
    digest = final("digest")
    if digest is not None and digest.started_at is not None:
        delay = (digest.started_at - digest.created_at).total_seconds()
        lines.append(
            f"scheduled: {digest.title} was enqueued with a delay and ran {delay:.1f} s later"
        )
    return lines


def _print_commands(tour: Tour, console: Console) -> None:
    prefix = "underway jobs underway.cli.tour:app"
    console.print()
    console.print(f"The jobs are in {tour.path}. Look at them with:", markup=False)
    if tour.path != Path(DEFAULT_DB).resolve():
        url = shlex.quote(f"sqlite:///{tour.path}")
        console.print(f"  export UNDERWAY_DATABASE_URL={url}", markup=False)
    dead = tour.roles.get("charge")
    dead_id = str(dead.id) if dead is not None else "ID"
    for command in (
        "list",
        "list --status failed",
        f"show {dead_id}",
        f"retry {dead_id}",
        "stats",
    ):
        console.print(f"  {prefix} {command}", markup=False)


# --- the database file ----------------------------------------------------------------------


def _reset_database(path: Path) -> None:
    """Delete the tour's previous database, refusing to touch a file that is not one."""
    if path.exists():
        if path.is_dir() or not _holds_an_earlier_tour(path):
            raise ConfigurationError(
                f"{path} exists and is not an underway database from an earlier tour; the "
                "demo recreates its file on every run, so pass --db with a new path"
            )
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)


def _holds_an_earlier_tour(path: Path) -> bool:
    """Whether the file at `path` is empty, or an underway database holding only the tour's
    jobs. underway itself reads it (`App.stats()`), on a throwaway copy: opening a database
    sets up underway's schema in it, and a file that turns out to be something else must be
    left exactly as it was."""
    size = path.stat().st_size
    if size == 0:
        return True
    if size > EARLIER_TOUR_MAX_BYTES:
        return False
    with tempfile.TemporaryDirectory(prefix="underway-demo-") as tmp:
        copy = Path(tmp) / path.name
        for suffix in ("", "-wal"):  # the log holds what was not yet written into the file
            if Path(f"{path}{suffix}").is_file():
                shutil.copyfile(f"{path}{suffix}", f"{copy}{suffix}")
        probe = App(f"sqlite:///{copy}")
        try:
            stats = probe.stats()
        except UnderwayError:  # not a database, or not one underway can read
            return False
        finally:
            probe.close()
    return stats.total > 0 and set(stats.by_task) <= TASK_NAMES


def _quiet_library_logs() -> None:
    """The tour shows what happens itself; without logging configured, Python would print
    the library's retry warnings over the live table."""
    if not logging.getLogger().handlers:
        logging.getLogger("underway").addHandler(logging.NullHandler())
