"""`underway jobs APP ...`: list, show, watch, cancel, retry and count jobs."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import uuid

import click

from ..app import App
from ..errors import JobNotFound, UnderwayError
from ..model import Status, View
from .loading import AppRef, app_argument, bind_app
from .render import job_to_dict, make_console
from .tables import attempts_table, change_line, job_detail, jobs_table, stats_tables


@click.group()
@app_argument
@click.pass_context
def jobs(ctx: click.Context, app_path: str) -> None:
    """Inspect and control APP's jobs: list, show, cancel, retry, stats."""
    bind_app(ctx, app_path)


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
    ref: AppRef,
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
def show_command(ref: AppRef, job_id: str, as_json: bool) -> None:
    """Show every field of one job, with its error and traceback."""
    job = ref.app.get_job(job_id)
    if job is None:
        raise JobNotFound(f"no job with id {job_id}")
    if as_json:
        click.echo(json.dumps(job_to_dict(job), ensure_ascii=False, indent=2))
        return
    console = make_console()
    console.print(job_detail(job, console))
    attempts = ref.app.attempts(job.id)
    if attempts:
        console.print(attempts_table(attempts))
    if job.error is not None and job.error.traceback:
        from rich.text import Text

        console.print(Text("traceback:", style="bold"))
        console.print(Text(job.error.traceback.rstrip()), soft_wrap=True)


@jobs.command("watch")
@click.option("--job", "job_id", metavar="ID", help="Only this job.")
@click.option("--task", help="Only jobs of this task name.")
@click.option("--queue", help="Only jobs in this queue.")
@click.option("--tenant", help="Only jobs of this tenant.")
@click.option("--since", metavar="CURSOR", help="Resume after this change's cursor.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per change per line.")
@click.pass_obj
def watch_command(
    ref: AppRef,
    job_id: str | None,
    task: str | None,
    queue: str | None,
    tenant: str | None,
    since: str | None,
    as_json: bool,
) -> None:
    """Print every change any process makes to matching jobs as it happens (Ctrl-C stops;
    --job stops once the job finished)."""
    console = make_console()
    changes = ref.app.watch(job=job_id, task=task, queue=queue, tenant=tenant, since=since)
    with contextlib.suppress(KeyboardInterrupt):
        for change in changes:
            if as_json:
                line = {"cursor": change.cursor, "kind": change.kind.value,
                        "at": change.at.isoformat(), "job": job_to_dict(change.job)}  # fmt: skip
                click.echo(json.dumps(line, ensure_ascii=False))
            else:
                console.print(change_line(change, console))
            if job_id is not None and change.job.finished:
                return


@jobs.command("cancel")
@click.argument("job_ids", metavar="ID...", nargs=-1, required=True)
@click.pass_context
def cancel_command(ctx: click.Context, job_ids: tuple[str, ...]) -> None:
    """Cancel jobs: a pending job never runs; a running one is stopped by its worker."""
    ref: AppRef = ctx.obj
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
    ref: AppRef = ctx.obj
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
@click.option("--tenant", help="Count only this tenant's jobs.")
@click.option("--json", "as_json", is_flag=True, help="The counts as one JSON object.")
@click.pass_obj
def stats_command(ref: AppRef, tenant: str | None, as_json: bool) -> None:
    """Counts of jobs by status, per task, per queue and per tenant; how each task's and
    schedule's runs went."""
    stats = ref.app.stats(tenant=tenant)
    if as_json:
        data = dataclasses.asdict(stats)
        data["total"] = stats.total
        click.echo(json.dumps(data, default=str, indent=2))
        return
    console = make_console()
    for table in stats_tables(stats):
        console.print(table)
