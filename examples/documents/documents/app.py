"""DocFlow assembled: underway's app and the platform's tables, with the jobs declared on it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import underway
from underway import Backoff

from .db import Database
from .jobs import DocFlowJobs, Outside
from .platform import Platform


@dataclass
class DocFlow:
    """One DocFlow process: its underway app, its platform and its jobs."""

    app: underway.App
    platform: Platform
    jobs: DocFlowJobs

    def tenant_key(self, tenant: str) -> str:
        """A key for underway's HTTP API that sees and touches only `tenant`'s jobs (the
        secret, shown once; `underway keys create --tenant` does the same)."""
        return self.app.create_key(name=f"tenant {tenant}", tenant=tenant)[1]


def create(
    jobs_url: str,
    docflow_url: str,
    storage: Path,
    outside: Outside,
    retry: Backoff | None = None,
    **settings: Any,
) -> DocFlow:
    """DocFlow on underway's store at `jobs_url` and its own tables at `docflow_url` (SQLite
    file or PostgreSQL URL; the two may be one PostgreSQL database). `settings` go to
    `underway.App` (the webhook secret, callback settings, poll intervals...)."""
    database = Database(docflow_url)
    database.create_tables()
    platform = Platform(database, storage)
    app = underway.App(jobs_url, **settings)
    jobs = DocFlowJobs(platform, outside, retry)
    jobs.register(app)
    return DocFlow(app, platform, jobs)
