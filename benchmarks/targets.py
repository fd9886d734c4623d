"""Where the benchmark's databases live, one class per store.

A target hands out a fresh, empty database URL per workload and knows its yardstick (the raw
SQL limit measured in the same run): a new SQLite file per workload, or a new PostgreSQL schema
per workload (`?schema=`), dropped once the workload is done.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

STORES = ("sqlite", "postgres")
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


class Target(Protocol):
    name: str

    def fresh_url(self, label: str) -> str:
        """The URL of a new, empty database for one workload."""

    def describe(self) -> dict[str, Any]:
        """Facts about where the data lives, printed with the machine info."""

    def yardsticks(
        self, n: int, *, quick: bool, processes: tuple[int, ...]
    ) -> list[dict[str, Any]]:
        """The raw-SQL yardsticks, as rows for the report (claim loops run by `processes`
        processes where the store lets several write at once)."""

    def explain(self) -> list[str]:
        """Query-plan notes for the store's hot statements (may be empty)."""

    def epoch(self) -> str | None:
        """When the server last started (None: no server). A change means it restarted."""

    def wait_until_up(self) -> str | None:
        """Wait for the server to answer again; its new epoch."""

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

    def yardsticks(
        self, n: int, *, quick: bool, processes: tuple[int, ...]
    ) -> list[dict[str, Any]]:
        import yardstick_sqlite

        return yardstick_sqlite.run(self.fresh_url, n)

    def explain(self) -> list[str]:
        import yardstick_sqlite

        return yardstick_sqlite.explain(self.fresh_url, 10_000)

    def epoch(self) -> str | None:
        return None

    def wait_until_up(self) -> str | None:
        return None

    def cleanup(self) -> None:
        if self._owned:
            shutil.rmtree(self.directory, ignore_errors=True)


class PostgresTarget:
    """Each workload gets a new schema (`underway_bench_<run>_<nn>_<label>`) on one server. A
    schema is dropped when the next one is handed out, and at cleanup: only the schemas this
    run created are ever touched."""

    name = "postgres"

    def __init__(self, url: str) -> None:
        import psycopg
        from yardstick_postgres import split_url

        self.conninfo, _ = split_url(url)
        self.run_id = uuid.uuid4().hex[:8]
        self._count = 0
        self._live: list[str] = []
        self._admin: Any = None
        try:
            self._connection()
        except psycopg.Error as exc:
            raise SystemExit(
                f"cannot connect to PostgreSQL at {self.conninfo}: {exc}\n"
                "pass --postgres-url (or UNDERWAY_BENCH_POSTGRES_URL), or --store sqlite"
            ) from None

    def _connection(self) -> Any:
        """The admin connection, opened again if the server restarted under it."""
        import psycopg

        if self._admin is None or self._admin.closed or self._admin.broken:
            self._admin = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=10)
            self._admin.execute("SET lock_timeout = '60s'")
        return self._admin

    def epoch(self) -> str | None:
        import psycopg

        try:
            row = self._connection().execute("SELECT pg_postmaster_start_time()::text").fetchone()
        except psycopg.Error:
            return "down"
        return str(row[0]) if row else None

    def wait_until_up(self, timeout: float = 120.0) -> str | None:
        deadline = time.monotonic() + timeout
        while True:
            value = self.epoch()
            if value != "down" or time.monotonic() > deadline:
                return value
            time.sleep(1.0)

    def fresh_url(self, label: str) -> str:
        self.drop_schemas()
        self._count += 1
        safe = re.sub(r"[^a-z0-9_]+", "_", label.lower())
        schema = f"underway_bench_{self.run_id}_{self._count:02d}_{safe}"[:63]
        self._live.append(schema)
        sep = "&" if "?" in self.conninfo else "?"
        return f"{self.conninfo}{sep}schema={schema}"

    def drop_schemas(self) -> None:
        from psycopg import sql

        while self._live:
            schema = self._live[-1]
            self._connection().execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            )
            self._live.pop()

    def setting(self, name: str) -> str:
        row = self._connection().execute("SELECT current_setting(%s)", (name,)).fetchone()
        return str(row[0]) if row else "?"

    def describe(self) -> dict[str, Any]:
        import psycopg

        names = (
            "server_version", "synchronous_commit", "fsync", "shared_buffers", "work_mem",
            "autovacuum", "wal_level", "max_connections", "data_directory",
        )  # fmt: skip
        settings = {}
        for name in names:
            try:
                settings[name] = self.setting(name)
            except psycopg.Error:  # data_directory needs a privileged role
                settings[name] = "?"
        data_dir = settings.get("data_directory", "?")
        return {
            "store": "postgres",
            "server": self.conninfo,
            "postgres": settings,
            "psycopg": f"{psycopg.__version__} ({psycopg.pq.__impl__})",
            "filesystem": _filesystem_of(Path(data_dir)) if data_dir != "?" else "unknown",
        }

    def yardsticks(
        self, n: int, *, quick: bool, processes: tuple[int, ...]
    ) -> list[dict[str, Any]]:
        import yardstick_postgres

        return yardstick_postgres.run(self.fresh_url, n, processes)

    def explain(self) -> list[str]:
        import yardstick_postgres

        return yardstick_postgres.explain(self.fresh_url, 10_000)

    def cleanup(self) -> None:
        try:
            self.wait_until_up()
            self.drop_schemas()
        finally:
            if self._admin is not None:
                self._admin.close()


def open_target(store: str, directory: str | None, postgres_url: str | None = None) -> Target:
    pg_url = postgres_url or os.environ.get("UNDERWAY_BENCH_POSTGRES_URL") or DEFAULT_POSTGRES_URL
    factories: dict[str, Callable[[], Target]] = {
        "sqlite": lambda: SqliteTarget(directory),
        "postgres": lambda: PostgresTarget(pg_url),
    }
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
