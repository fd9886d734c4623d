"""`underway schedules APP ...`: list schedules with how their runs went; pause, resume and
trigger them (for every scheduler at once)."""

from __future__ import annotations

import json

import click

from ..app import App
from ..errors import ScheduleDeclaredInCode
from .loading import AppRef, app_argument, bind_app
from .render import make_console, schedule_to_dict
from .tables import schedules_table


@click.group()
@app_argument
@click.pass_context
def schedules(ctx: click.Context, app_path: str) -> None:
    """List APP's schedules; pause, resume, restart, trigger and remove them."""
    bind_app(ctx, app_path)


@schedules.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per schedule per line.")
@click.pass_obj
def schedules_list(ref: AppRef, as_json: bool) -> None:
    """Every schedule: its task and rule, its state, when it runs next and ran last, how many
    jobs it fired, and how their runs went (runs, failures, durations)."""
    found = ref.app.list_schedules()
    if as_json:
        for info in found:
            click.echo(json.dumps(schedule_to_dict(info), ensure_ascii=False))
        return
    console = make_console()
    if not found:
        console.print("no schedules: the app defines none (@app.periodic or app.schedule)")
        return
    console.print(schedules_table(found))


@schedules.command("pause")
@click.argument("name")
@click.pass_obj
def schedules_pause(ref: AppRef, name: str) -> None:
    """Stop every scheduler (and worker) from firing NAME until it is resumed. Jobs it already
    fired are not touched."""
    _require(ref.app, name)
    ref.app.pause_schedule(name)
    click.echo(f"schedule {name} paused: no scheduler fires it until it is resumed")


@schedules.command("resume")
@click.argument("name")
@click.pass_obj
def schedules_resume(ref: AppRef, name: str) -> None:
    """Let schedulers fire NAME again."""
    _require(ref.app, name)
    ref.app.resume_schedule(name)
    click.echo(f"schedule {name} resumed")


@schedules.command("trigger")
@click.argument("name")
@click.option("--tenant", default=None, help="the tenant to run it for (a schedule per tenant)")
@click.pass_obj
def schedules_trigger(ref: AppRef, name: str, tenant: str | None) -> None:
    """Enqueue NAME's task now, outside its slots, and print the job's id. Works while the
    schedule is paused too; its slots are not moved."""
    _require(ref.app, name)
    job = ref.app.trigger_schedule(name, tenant=tenant)
    click.echo(str(job.id))


@schedules.command("restart")
@click.argument("name")
@click.pass_obj
def schedules_restart(ref: AppRef, name: str) -> None:
    """Resume NAME and count its slots again from now, for every scheduler: an interval
    schedule fires at once, a cron one at its next time."""
    _require(ref.app, name)
    ref.app.restart_schedule(name)
    click.echo(f"schedule {name} restarted")


@schedules.command("remove")
@click.argument("name")
@click.pass_obj
def schedules_remove(ref: AppRef, name: str) -> None:
    """Remove NAME, a schedule put at run time: no scheduler fires it any more. A schedule
    declared in code is refused (pause it, or delete it from the code)."""
    _require(ref.app, name)
    try:
        ref.app.remove_schedule(name)
    except ScheduleDeclaredInCode as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"schedule {name} removed")


def _require(app: App, name: str) -> None:
    """An unknown schedule name is an error (exit 1) that lists the known ones."""
    known = [info.name for info in app.list_schedules()]
    if name not in known:
        listed = ", ".join(known) if known else "none"
        raise click.ClickException(f"no schedule named {name!r}; schedules: {listed}")
