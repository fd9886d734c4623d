"""`underway queues APP ...`: list queues; pause, resume and limit them for every worker."""

from __future__ import annotations

import dataclasses
import json

import click

from ..app import App
from .loading import AppRef, app_argument, bind_app
from .render import make_console
from .tables import queues_table

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


@click.group("queues")
@app_argument
@click.pass_context
def queues(ctx: click.Context, app_path: str) -> None:
    """List APP's queues; pause, resume and limit them (for every worker at once)."""
    bind_app(ctx, app_path)


@queues.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per queue per line.")
@click.pass_obj
def queues_list(ref: AppRef, as_json: bool) -> None:
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


@queues.command("pause")
@click.argument("name", callback=_queue_name)
@click.pass_obj
def queues_pause(ref: AppRef, name: str) -> None:
    """Stop every worker from starting NAME's jobs (running ones finish; enqueueing goes on)."""
    _warn_if_new(ref.app, name)
    ref.app.pause_queue(name)
    click.echo(f"queue {name} paused: no worker starts its jobs until it is resumed")


@queues.command("resume")
@click.argument("name", callback=_queue_name)
@click.pass_obj
def queues_resume(ref: AppRef, name: str) -> None:
    """Let workers start NAME's jobs again."""
    _warn_if_new(ref.app, name)
    ref.app.resume_queue(name)
    click.echo(f"queue {name} resumed")


@queues.command("limit", context_settings={"ignore_unknown_options": True})
@click.argument("name", callback=_queue_name)
@click.argument("limit", metavar="N|none", callback=_limit_argument)
@click.pass_obj
def queues_limit(ref: AppRef, name: str, limit: int | None) -> None:
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
