"""`underway keys APP ...`: make, list and revoke the API keys of the HTTP API.

A key's secret is printed once, alone on the last line of `create`'s output (so scripts can
take it with `tail -n 1`); the store keeps only its hash. Whoever runs these commands reaches
the store directly and so sees every tenant's keys, like an admin key.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING

import click

from ..keys import ApiKey
from .loading import AppRef, app_argument, bind_app
from .render import jsonable, local_time, make_console

if TYPE_CHECKING:
    from rich.table import Table


@click.group("keys")
@app_argument
@click.pass_context
def keys(ctx: click.Context, app_path: str) -> None:
    """Make, list and revoke APP's API keys (for `underway serve`)."""
    bind_app(ctx, app_path)


@keys.command("create")
@click.option("--tenant", help="Scope the key to this tenant (default: an admin key).")
@click.option("--name", help="A label to recognise the key by.")
@click.pass_obj
def keys_create(ref: AppRef, tenant: str | None, name: str | None) -> None:
    """Make a key; its secret is printed once, on the last line."""
    key, secret = ref.app.create_key(name=name, tenant=tenant)
    scope = "every tenant (admin)" if key.admin else f"tenant {key.tenant} only"
    click.echo(f"created key {key.id}{f' ({key.name})' if key.name else ''} for {scope}")
    click.echo("the secret below is shown only this once; send it as `Authorization: Bearer ...`")
    click.echo(secret)


@keys.command("list")
@click.option("--tenant", help="Only the keys of this tenant.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per key per line.")
@click.pass_obj
def keys_list(ref: AppRef, tenant: str | None, as_json: bool) -> None:
    """Every key, revoked ones too (never their secrets)."""
    found = [k for k in ref.app.list_keys() if tenant is None or k.tenant == tenant]
    if as_json:
        for key in found:
            data = {f.name: jsonable(getattr(key, f.name)) for f in dataclasses.fields(key)}
            click.echo(json.dumps(data, ensure_ascii=False))
        return
    console = make_console()
    if not found:
        console.print("no keys" + (f" for tenant {tenant}" if tenant else "")
                      + ": make one with `underway keys APP create`")  # fmt: skip
        return
    console.print(_keys_table(found))


@keys.command("revoke")
@click.argument("key_id", metavar="ID")
@click.pass_obj
def keys_revoke(ref: AppRef, key_id: str) -> None:
    """Revoke key ID for good: it never authenticates again."""
    key = ref.app.revoke_key(key_id)
    click.echo(f"key {key.id} revoked; requests made with it now answer 401")


def _keys_table(found: list[ApiKey]) -> Table:
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("id", "name", "tenant", "created", "last used", "state"):
        table.add_column(column)
    for key in found:
        table.add_row(
            key.id,
            key.name or "-",
            key.tenant if key.tenant is not None else "(admin)",
            local_time(key.created_at),
            local_time(key.last_used_at) if key.last_used_at else "never",
            f"revoked {local_time(key.revoked_at)}" if key.revoked_at else "active",
        )
    return table
