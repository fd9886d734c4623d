"""The chat bot's underway app: the six maintenance tasks, each on a schedule whose interval
comes from the settings and whose first run fires at once after every start of the bot
(`first_after_boot=0`), as the seed's in-memory `_last_run` did."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import underway

from .db import create_tables, open_database
from .settings import MaintenanceSettings
from .tasks import (
    CacheCleanupTask,
    DatabaseCleanupTask,
    DocumentStorageCleanupTask,
    HealthCheckTask,
    MetricsCollectionTask,
    SessionCleanupTask,
)


class ChatBot:
    """The underway app on `database_url` (default UNDERWAY_DATABASE_URL or a SQLite file),
    the bot's tables in the same database, and its maintenance `settings` (default: from the
    environment). `underway_settings` are underway's (poll_seconds=...)."""

    def __init__(
        self,
        database_url: str | None = None,
        settings: MaintenanceSettings | None = None,
        **underway_settings: Any,
    ) -> None:
        self.app = underway.App(database_url, **underway_settings)
        self.database_url = self.app.settings.database_url
        self.settings = settings or MaintenanceSettings.from_env()
        opened = {"db": functools.partial(open_database, self.database_url)}
        settings_now = self.settings
        given = {"settings": lambda: settings_now}
        both = opened | given
        app = self.app
        self.database_cleanup = app.task_class(DatabaseCleanupTask, deps=both)
        self.cache_cleanup = app.task_class(CacheCleanupTask, deps=opened)
        self.session_cleanup = app.task_class(SessionCleanupTask, deps=opened)
        self.document_storage_cleanup = app.task_class(DocumentStorageCleanupTask, deps=given)
        self.health_check = app.task_class(HealthCheckTask, deps=both)
        self.metrics_collection = app.task_class(MetricsCollectionTask, deps=both)
        s = self.settings
        for name, task, every in (
            ("database_cleanup", self.database_cleanup, s.db_cleanup_interval),
            ("cache_cleanup", self.cache_cleanup, s.cache_cleanup_interval),
            ("session_cleanup", self.session_cleanup, s.session_cleanup_interval),
            ("document_storage_cleanup", self.document_storage_cleanup,
             s.documents_cleanup_interval),
            ("health_check", self.health_check, s.health_check_interval),
            ("metrics_collection", self.metrics_collection, s.metrics_collection_interval),
        ):  # fmt: skip
            # overlap="skip": a run still going when its next slot comes is not doubled
            app.schedule(task, every=every, name=name, first_after_boot=0, overlap="skip")

    def prepare(self) -> None:
        """Create underway's tables, the bot's own and its document folder if missing."""
        self.app.migrate()
        create_tables(self.database_url)
        Path(self.settings.documents_dir).mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        self.app.close()
