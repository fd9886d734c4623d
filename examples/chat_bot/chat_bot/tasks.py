"""The six maintenance tasks of seed 003 as underway task classes: dependencies in the
constructor (the bot's tables in a transaction of the job's own, the settings), retry settings
as class attributes, the work in `execute`. A task that raises is retried with backoff; out of
attempts its job fails and its schedule reads "failing" until a run succeeds."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx

import underway

from .db import (
    COUNT,
    DELETE_EXPIRED_CACHE,
    DELETE_EXPIRED_SESSIONS,
    DELETE_STALE_TRANSACTIONS,
    TRIM_AUDIT,
    BotDatabase,
    Health,
)
from .settings import MaintenanceSettings

#: how long a service may take to answer a probe or a stats request
SERVICE_TIMEOUT = 10.0


class ServiceUnavailable(ConnectionError):
    """A critical service did not answer its stats: metrics collection retries, then fails."""


class DatabaseCleanupTask(underway.TaskClass):
    """Remove stale transactions and trim the audit trail (older than `DB_CLEANUP_DAYS`)."""

    name = "chat_bot.database_cleanup"
    title = "Database cleanup"
    max_attempts = 3
    retry = underway.Backoff(base=5.0, factor=2.0, max=300.0)

    def __init__(self, db: BotDatabase, settings: MaintenanceSettings) -> None:
        self.db = db
        self.settings = settings

    def execute(self) -> dict[str, int]:
        before = time.time() - self.settings.db_cleanup_days * 86400
        return {"transactions": self.db.deleted(DELETE_STALE_TRANSACTIONS, before),
                "audit": self.db.deleted(TRIM_AUDIT, before)}  # fmt: skip


class ExpiredRowsCleanup(underway.TaskClass):
    """Delete the rows of one table whose time to live has passed (`EXPIRED`, a DELETE
    statement with the time bound); the subclasses name the table."""

    max_attempts = 3
    retry = underway.Backoff(base=2.0, factor=2.0, max=60.0)
    EXPIRED = ""

    def __init__(self, db: BotDatabase) -> None:
        self.db = db

    def execute(self) -> dict[str, int]:
        return {"expired": self.db.deleted(self.EXPIRED, time.time())}


class CacheCleanupTask(ExpiredRowsCleanup):
    """Clear the expired entries of the reply cache."""

    name = "chat_bot.cache_cleanup"
    title = "Cache cleanup"
    EXPIRED = DELETE_EXPIRED_CACHE


class SessionCleanupTask(ExpiredRowsCleanup):
    """Prune expired sessions from the session store."""

    name = "chat_bot.session_cleanup"
    title = "Session cleanup"
    EXPIRED = DELETE_EXPIRED_SESSIONS


class DocumentStorageCleanupTask(underway.TaskClass):
    """Delete temporary OCR outputs older than `DOCUMENTS_CLEANUP_HOURS`, then the oldest files
    until the folder fits `DOCUMENTS_STORAGE_QUOTA_MB`. It may walk many files: it looks at
    `ctx.cancelled` before each one, so a stop ends it at once, between two files."""

    name = "chat_bot.document_storage_cleanup"
    title = "Document storage cleanup"
    max_attempts = 2
    no_retry_on = (NotADirectoryError,)

    def __init__(self, settings: MaintenanceSettings) -> None:
        self.settings = settings

    def execute(self, ctx: underway.Context, folder: str | None = None) -> dict[str, Any]:
        root = Path(folder or self.settings.documents_dir)
        if not root.is_dir():
            raise NotADirectoryError(f"{root} is not a folder: set DOCUMENTS_DIR")
        files = sorted((p.stat().st_mtime, p) for p in root.rglob("*") if p.is_file())
        too_old = time.time() - self.settings.documents_cleanup_hours * 3600
        quota = int(self.settings.documents_storage_quota_mb * 1024 * 1024)
        total = sum(path.stat().st_size for _, path in files)
        expired = over_quota = 0
        for modified, path in files:  # oldest first
            if ctx.cancelled:
                break
            if modified >= too_old and total <= quota:
                break  # the rest are newer and the folder fits
            total -= path.stat().st_size
            path.unlink()
            if modified < too_old:
                expired += 1
            else:
                over_quota += 1
        ctx.report_status(f"Removed {expired + over_quota} files, {total:,} bytes kept")
        return {"expired": expired, "over_quota": over_quota, "bytes": total,
                "complete": not ctx.cancelled}  # fmt: skip


class HealthCheckTask(underway.TaskClass):
    """Probe every critical service (and the database) and record its status. The probes are
    awaited together; a stop cancels them wherever they wait."""

    name = "chat_bot.health_check"
    title = "Health check"
    max_attempts = 1  # the next interval is the retry

    def __init__(self, db: BotDatabase, settings: MaintenanceSettings) -> None:
        self.db = db
        self.settings = settings

    async def execute(self) -> dict[str, bool]:
        services = self.settings.services
        async with httpx.AsyncClient(timeout=SERVICE_TIMEOUT) as client:
            probes = [_probe(client, name, url) for name, url in services.items()]
            found = list(await asyncio.gather(*probes))
        self.db.run("SELECT 1").fetchone()  # reaching this line is the database's health
        found.append(Health("database", True, "ok", time.time()))
        for health in found:
            self.db.record_health(health)
        return {health.service: health.healthy for health in found}


async def _probe(client: httpx.AsyncClient, name: str, url: str) -> Health:
    try:
        response = await client.get(f"{url}/health")
    except httpx.HTTPError as exc:
        return Health(name, False, f"unreachable: {exc!r}", time.time())
    healthy = response.status_code == 200
    return Health(name, healthy, "ok" if healthy else f"answered {response.status_code}",
                  time.time())  # fmt: skip


class MetricsCollectionTask(underway.TaskClass):
    """Gather every component's stats (the services' `/stats`, the bot's table sizes) into
    `cb_metrics`, a history a Prometheus exporter can serve. A service that does not answer
    fails the run (retried once, soon), so a component gone for good shows as failing. The
    requests are awaited together; a stop cancels them wherever they wait."""

    name = "chat_bot.metrics_collection"
    title = "Metrics collection"
    max_attempts = 2
    retry = underway.Backoff(base=0.5, factor=2.0, max=30.0, jitter=False)

    def __init__(self, db: BotDatabase, settings: MaintenanceSettings) -> None:
        self.db = db
        self.settings = settings

    async def execute(self) -> int:
        values = {f"rows.{table}": float(self.db.count(table)) for table in COUNT}
        async with httpx.AsyncClient(timeout=SERVICE_TIMEOUT) as client:
            asked = [_stats(client, name, url) for name, url in self.settings.services.items()]
            for name, stats in await asyncio.gather(*asked):
                values.update({f"{name}.{stat}": value for stat, value in stats.items()})
        self.db.record_metrics(time.time(), values)
        return len(values)


async def _stats(client: httpx.AsyncClient, name: str, url: str) -> tuple[str, dict[str, float]]:
    try:
        response = await client.get(f"{url}/stats")
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(f"{name} gave no stats: {exc}") from None
    return name, {str(k): float(v) for k, v in response.json().items()}
