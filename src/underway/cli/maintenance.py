"""Looking after the database: `underway migrate APP` and `underway prune APP`."""

from __future__ import annotations

import click

from .durations import duration_option, format_duration
from .loading import app_argument, load_app


@click.command()
@app_argument
def migrate(app_path: str) -> None:
    """Create or upgrade APP's schema and print its version."""
    app = load_app(app_path)
    try:
        version = app.migrate()
    finally:
        app.close()
    click.echo(f"schema version {version} ({safe_url(app.settings.database_url)})")


def safe_url(url: str) -> str:
    """The URL without its password."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url


@click.command()
@app_argument
@click.option(
    "--older-than",
    metavar="DURATION",
    callback=duration_option,
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
