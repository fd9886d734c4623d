"""`underway serve APP`: the dashboard, the HTTP API and its event stream, with uvicorn."""

from __future__ import annotations

import ipaddress

import click

from .loading import app_argument, load_app


@click.command()
@app_argument
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    help="Serve without API keys, everyone as admin. Only on a loopback host.",
)
def serve(app_path: str, host: str, port: int, insecure_no_auth: bool) -> None:
    """Serve APP's dashboard at / and its HTTP API: JSON under /api/v1, live events at
    /api/v1/events, the schema at /openapi.json. Every call needs an API key (`underway keys
    APP create`; the dashboard logs in with one)."""
    if insecure_no_auth and not is_loopback(host):
        raise click.UsageError(
            f"--insecure-no-auth lets anyone who reaches the server do anything, so it is only "
            f"allowed on a loopback host (127.0.0.1, ::1, localhost), not {host!r}; make a key "
            "with `underway keys APP create` instead"
        )
    try:
        import uvicorn

        from ..web import create_api
    except ImportError as exc:
        raise click.ClickException(str(exc)) from None
    app = load_app(app_path)
    api = create_api(app, insecure_no_auth=insecure_no_auth)
    if insecure_no_auth:
        click.echo("warning: serving without authentication (--insecure-no-auth)", err=True)
    try:
        uvicorn.run(api, host=host, port=port, log_level="info")
    finally:
        app.close()


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine's loopback interface only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
