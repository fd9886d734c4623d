"""The file manager's underway app: its two task classes, each job given the file index (the
example's own tables) in a transaction of its own."""

from __future__ import annotations

import functools
from typing import Any

import underway

from .index import create_tables, open_index
from .tasks import CopyOperation, MetadataScan


class FileManager:
    """The underway app on `database_url` (default UNDERWAY_DATABASE_URL or a SQLite file),
    its two tasks, and the example's own tables at `index_url` (default: the same database).
    `settings` are underway's (poll_seconds=...)."""

    def __init__(
        self, database_url: str | None = None, index_url: str | None = None, **settings: Any
    ) -> None:
        self.app = underway.App(database_url, **settings)
        self.index_url = index_url or self.app.settings.database_url
        # A dependency that returns a context manager is entered for each job and left after
        # it: the job's own transaction on the index, committed if the job succeeds.
        index = {"index": functools.partial(open_index, self.index_url)}
        #: enqueue(root=...): index every file under a folder
        self.scan = self.app.task_class(MetadataScan, deps=index)
        #: enqueue(src=..., dst=..., max_bytes_per_second=None): copy one file
        self.copy = self.app.task_class(CopyOperation, deps=index)

    def prepare(self) -> None:
        """Create underway's tables and the example's own if they are missing."""
        self.app.migrate()
        create_tables(self.index_url)

    def close(self) -> None:
        self.app.close()
