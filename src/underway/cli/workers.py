"""`underway workers APP`: the worker processes alive now, on every machine."""

from __future__ import annotations

import dataclasses
import json

import click

from .loading import app_argument, load_app
from .render import jsonable, make_console
from .tables import workers_table


@click.command("workers")
@app_argument
@click.option("--json", "as_json", is_flag=True, help="One JSON object per worker per line.")
def workers(app_path: str, as_json: bool) -> None:
    """List APP's live workers: host, pid, queues, what each runs now and its last heartbeat.
    A worker that stopped heartbeating drops out once its lease passes."""
    found = load_app(app_path).workers()
    if as_json:
        for worker in found:
            data = {f.name: jsonable(getattr(worker, f.name)) for f in dataclasses.fields(worker)}
            click.echo(json.dumps(data, ensure_ascii=False))
        return
    console = make_console()
    if not found:
        console.print("no live workers")
        return
    console.print(workers_table(found))
