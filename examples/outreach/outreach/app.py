"""The outreach tool's background work on underway: `create_app(config)` declares it all.

outreach = create_app(Config(database_url="postgresql://..."))
outreach.app.run_worker()          # or: underway worker outreach.main:app
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

import underway

from . import monitoring, oauth, sessions, startup, sync
from .config import Config
from .database import Connection, Database
from .smartlead import Smartlead


@dataclass(frozen=True)
class Outreach:
    """The app and what it runs on, for callers and tests."""

    app: underway.App
    config: Config
    database: Database
    oauth: underway.Task[..., Any]
    cleanup_sessions: underway.Task[..., Any]
    monitor_campaigns: underway.Task[..., Any]
    sync: underway.Task[..., Any]
    initialize: underway.Task[..., Any]


def create_app(config: Config | None = None, **settings: Any) -> Outreach:
    """Declare the tasks, schedules and boot work on a new App; `settings` are underway's."""
    config = config or Config.from_env()
    app = underway.App(config.database_url, **settings)
    database = Database(config.database_url)

    # The seed's scoping pattern: each run gets its own connection and HTTP client, opened
    # for the run and closed when it ends, however it ends.
    def db() -> Connection:
        return database.connect()

    def http() -> Iterator[httpx.Client]:
        with httpx.Client(base_url=config.services_url, timeout=10) as client:
            yield client

    def smartlead(ctx: underway.Context) -> Iterator[Smartlead]:
        # Each request names its run, so Smartlead's logs (and the tests) can follow one run.
        run = {"x-outreach-run": str(ctx.job.id)}
        with httpx.Client(base_url=config.services_url, headers=run, timeout=10) as client:
            yield Smartlead(client)

    initialize = startup.declare(app, {"db": db, "http": http}, config.admin_email)

    @app.on_startup
    async def boot() -> None:
        # The tables must exist before any job runs, so this waits; the rest does not.
        await asyncio.to_thread(database.create_tables)
        await initialize.options(key=startup.KEY).enqueue_async()

    return Outreach(
        app=app, config=config, database=database,
        oauth=oauth.declare(app, database, config.services_url),
        cleanup_sessions=sessions.declare(app, {"db": db}),
        monitor_campaigns=monitoring.declare(app, {"db": db}, config.thresholds),
        sync=sync.declare(app, {"db": db, "smartlead": smartlead}, config.lead_page_size),
        initialize=initialize,
    )  # fmt: skip
