"""The local PostgreSQL cluster as a fault: stop it (`-m fast` or `-m immediate`), keep it
down, start it again (only for tests marked `restarts_postgres`, which run after every other
test of the session); change its reloadable settings for a while; and what a fleet holds on
it: its sessions, a table's dead rows."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from underway.stores.postgres.store import _split_url


def cluster_version() -> str:
    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir() if p.is_dir())
    if not versions:
        raise RuntimeError("restarting PostgreSQL needs a local Debian cluster (pg_ctlcluster)")
    return versions[-1]


def ready(url: str) -> bool:
    params = conninfo_to_dict(_split_url(url)[0])
    answer = subprocess.run(
        ["pg_isready", "-h", str(params.get("host") or "127.0.0.1"),
         "-p", str(params.get("port") or 5432)],
        capture_output=True, timeout=10, check=False,
    )  # fmt: skip
    return answer.returncode == 0


def _cluster(action: str, *options: str) -> None:
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", cluster_version(), "main", action,
         *options],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip


def restart(url: str, mode: str, down_seconds: float) -> float:
    """Stop the server with `mode` (fast, immediate), keep it down `down_seconds`, start it
    and wait until it answers. Returns when it answered again (time.time())."""
    try:
        _cluster("stop", "-m", mode)
        time.sleep(down_seconds)
    finally:
        if not ready(url):
            _cluster("start")
        deadline = time.monotonic() + 60
        while not ready(url):
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not come back within 60 s of its start")
            time.sleep(0.1)
    return time.time()


def listening_sessions(url: str, application_name: str) -> int:
    """How many of the fleet's sessions wait in LISTEN for new work (one per live worker)."""
    with psycopg.connect(_split_url(url)[0], autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name = %s AND query LIKE 'LISTEN \"underway:%%'",
            (application_name,),
        ).fetchone()
    return int(row[0]) if row else 0


@contextlib.contextmanager
def configured(url: str, **settings: str) -> Iterator[None]:
    """The server with these reloadable settings (ALTER SYSTEM, pg_reload_conf) for the
    block, then each back as it was: its own ALTER SYSTEM value, or none."""
    conninfo = _split_url(url)[0]
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
        before = {}
        for name in settings:
            row = conn.execute(
                "SELECT setting, coalesce(sourcefile, '') FROM pg_settings WHERE name = %s",
                (name,),
            ).fetchone()
            assert row is not None, f"no setting {name}"
            before[name] = row[0] if row[1].endswith("postgresql.auto.conf") else None
        try:
            for name, value in settings.items():
                conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
            conn.execute("SELECT pg_reload_conf()")
            time.sleep(0.5)  # the postmaster and its children read the file again
            yield
        finally:
            for name, old in before.items():
                if old is None:
                    conn.execute(f"ALTER SYSTEM RESET {name}")
                else:
                    conn.execute(f"ALTER SYSTEM SET {name} = '{old}'")
            conn.execute("SELECT pg_reload_conf()")


def dead_rows(url: str, table: str = "underway_jobs") -> int:
    """The statistics' count of dead rows in one of the schema's tables."""
    conninfo, schema = _split_url(url)
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT n_dead_tup FROM pg_stat_user_tables WHERE schemaname = %s AND relname = %s",
            (schema or "public", table),
        ).fetchone()
    return int(row[0]) if row else 0
