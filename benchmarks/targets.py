"""Where the benchmark's databases live, one module per store.

A target hands out a fresh, empty database URL per workload and knows its yardstick (the raw
SQL limit measured in the same run). PostgreSQL adds a `PostgresTarget` (a fresh database or
schema per workload) and a `yardstick_postgres` module with the same `run()` signature.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

STORES = ("sqlite",)  # "postgres" joins when its store lands


class Target(Protocol):
    name: str

    def fresh_url(self, label: str) -> str:
        """The URL of a new, empty database for one workload."""

    def describe(self) -> dict[str, Any]:
        """Facts about where the data lives, printed with the machine info."""

    def yardsticks(self, n: int, *, quick: bool) -> list[dict[str, Any]]:
        """The raw-SQL yardsticks, as rows for the report."""

    def explain(self) -> list[str]:
        """Query-plan notes for the store's hot statements (may be empty)."""

    def cleanup(self) -> None: ...


class SqliteTarget:
    """Each workload gets its own SQLite file in one directory (a temporary one by default)."""

    name = "sqlite"

    def __init__(self, directory: str | None = None) -> None:
        self._owned = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="underway-bench-"))
        self.directory.mkdir(parents=True, exist_ok=True)
        self._count = 0

    def fresh_url(self, label: str) -> str:
        self._count += 1
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", label)
        path = self.directory / f"{self._count:02d}-{safe}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path.resolve()}"

    def describe(self) -> dict[str, Any]:
        import sqlite3

        return {
            "store": "sqlite",
            "sqlite_version": sqlite3.sqlite_version,
            "directory": str(self.directory),
            "filesystem": _filesystem_of(self.directory),
            "journal": "WAL, synchronous=NORMAL (as underway opens it)",
        }

    def yardsticks(self, n: int, *, quick: bool) -> list[dict[str, Any]]:
        import yardstick_sqlite

        return yardstick_sqlite.run(self.fresh_url, n)

    def explain(self) -> list[str]:
        import yardstick_sqlite

        return yardstick_sqlite.explain(self.fresh_url, 10_000)

    def cleanup(self) -> None:
        if self._owned:
            shutil.rmtree(self.directory, ignore_errors=True)


def open_target(store: str, directory: str | None) -> Target:
    factories: dict[str, Callable[[], Target]] = {"sqlite": lambda: SqliteTarget(directory)}
    try:
        return factories[store]()
    except KeyError:
        raise SystemExit(f"unknown store {store!r}; choose one of {', '.join(STORES)}") from None


def _filesystem_of(path: Path) -> str:
    """The filesystem type holding `path` (tmpfs makes fsync free), from /proc/mounts."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return "unknown"
    real = os.path.realpath(path)
    best, kind = "", "unknown"
    for line in mounts:
        parts = line.split()
        if len(parts) < 3 or len(parts[1]) < len(best):
            continue
        if real == parts[1] or real.startswith(parts[1].rstrip("/") + "/"):
            best, kind = parts[1], parts[2]
    return f"{kind} ({best})" if best else kind
