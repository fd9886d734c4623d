"""The dashboard on a big store (`./run bench --only dashboard`): every request a page makes
must answer in under 500 ms with 1,000,000 finished and 10,000 pending jobs (issue 9).

Fills a fresh store (underway's own schema, from migrate) straight from SQL, rows shaped as
the store writes them, with every trigger on (so the tallies, counters and minutes are made
as they would be in use):

- F finished jobs: 1 in 53 failed (with an error), 1 in 199 cancelled, the rest completed,
  created and finished over the last 6 hours, spread over 10 tasks, 5 queues and 20 tenants
  (1 job in 21 without one), every 10th with a key, 1 in 100 made by a schedule;
- P pending jobs (P = F / 100): a quarter scheduled an hour ahead, a fifth retrying (attempt
  1 with an error), the rest due; and 50 running, leased for an hour;
- a few jobs run for real by a burst worker, so a job has attempts to show.

The fill's change-feed rows are deleted afterwards (the feed keeps an hour, and a store this
size would have pruned them); PostgreSQL is ANALYZEd, as autovacuum would after such a load;
SQLite is not (underway never runs ANALYZE on it, so its planner works without statistics
here as it does for users). Then `underway serve` runs in a process of its own on a loopback
port and each path of `PAGES` is requested over HTTP, with an admin key (and the `tenant`
ones with a tenant key): a warm-up request, then `rounds` timed ones; p50 and max per path.
Nothing here asserts a timing.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dashboard_app import FLAKY_TASK, make_app
from report import progress

from underway.web.access import SESSION_COOKIE

#: the budget of one request (issue 9: every page renders in under 500 ms)
BUDGET_MS = 500.0
#: how long ago the oldest finished job was created
SPAN_SECONDS = 6 * 3600
HERE = Path(__file__).resolve().parent

# (label, path, key): the dashboard's pages and the API requests they (and their script) make.
# {placeholders} are filled from the store once it is filled (see _facts); key "tenant" asks
# as tenant_07's key. API paths send the key as a bearer token, pages in the session cookie.
PAGES: list[tuple[str, str, str]] = [
    ("overview: stats", "/api/v1/stats", "admin"),
    ("overview: stats, tenant key", "/api/v1/stats", "tenant"),
    ("overview: last hour", "/api/v1/stats/history?minutes=60", "admin"),
    ("overview: last hour, tenant key", "/api/v1/stats/history?minutes=60", "tenant"),
    ("overview: queues", "/api/v1/queues", "admin"),
    ("overview: workers", "/api/v1/workers", "admin"),
    ("jobs: newest", "/api/v1/jobs?limit=50", "admin"),
    ("jobs: next page", "/api/v1/jobs?limit=50&cursor={cursor}", "admin"),
    ("jobs: a deep page", "/api/v1/jobs?limit=50&cursor={deep_cursor}", "admin"),
    ("jobs: completed", "/api/v1/jobs?status=completed&limit=50", "admin"),
    ("jobs: pending", "/api/v1/jobs?status=pending&limit=50", "admin"),
    ("jobs: running", "/api/v1/jobs?status=running&limit=50", "admin"),
    ("jobs: cancelled", "/api/v1/jobs?status=cancelled&limit=50", "admin"),
    ("jobs: scheduled", "/api/v1/jobs?view=scheduled&limit=50", "admin"),
    ("jobs: retrying", "/api/v1/jobs?view=retrying&limit=50", "admin"),
    ("jobs: task", "/api/v1/jobs?task=bench.task_3&limit=50", "admin"),
    ("jobs: queue", "/api/v1/jobs?queue=queue_2&limit=50", "admin"),
    ("jobs: tenant", "/api/v1/jobs?tenant=tenant_07&limit=50", "admin"),
    ("jobs: tenant key", "/api/v1/jobs?limit=50", "tenant"),
    ("jobs: completed, task", "/api/v1/jobs?status=completed&task=bench.task_3&limit=50", "admin"),
    ("jobs: pending, queue", "/api/v1/jobs?status=pending&queue=queue_2&limit=50", "admin"),
    ("jobs: task, queue, tenant",
     "/api/v1/jobs?task=bench.task_3&queue=queue_2&tenant=tenant_07&limit=50", "admin"),
    ("jobs: search by key", "/api/v1/jobs?key={key}&limit=50", "admin"),
    ("jobs: search by key, none", "/api/v1/jobs?key=no-such-key&limit=50", "admin"),
    ("jobs: last hour", "/api/v1/jobs?created_after={hour_ago}&limit=50", "admin"),
    ("jobs: 5 to 4 hours ago",
     "/api/v1/jobs?created_after={five_hours_ago}&created_before={four_hours_ago}&limit=50",
     "admin"),
    ("jobs: before 5 hours ago", "/api/v1/jobs?created_before={five_hours_ago}&limit=50",
     "admin"),
    ("jobs: a task, last hour", "/api/v1/jobs?task=bench.task_3&created_after={hour_ago}&limit=50",
     "admin"),
    ("dead letters", "/api/v1/jobs?status=failed&limit=50", "admin"),
    ("dead letters: task", "/api/v1/jobs?status=failed&task=bench.task_3&limit=50", "admin"),
    ("dead letters: queue", "/api/v1/jobs?status=failed&queue=queue_2&limit=50", "admin"),
    ("dead letters: tenant", "/api/v1/jobs?status=failed&tenant=tenant_07&limit=50", "admin"),
    ("dead letters: tenant key", "/api/v1/jobs?status=failed&limit=50", "tenant"),
    ("job: detail", "/api/v1/jobs/{job}", "admin"),
    ("job: attempts and deliveries", "/api/v1/jobs/{job}/attempts", "admin"),
    ("job: detail, a finished one", "/api/v1/jobs/{finished_job}", "admin"),
    ("schedules", "/api/v1/schedules", "admin"),
    ("tasks", "/api/v1/tasks", "admin"),
    ("health", "/health", "admin"),
    ("metrics", "/metrics", "admin"),
    # The dashboard's pages, with the key in the session cookie as a logged-in browser has it.
    ("page: overview", "/", "admin"),
    ("page: overview, tenant key", "/", "tenant"),
    ("page: jobs", "/jobs", "admin"),
    ("page: jobs, next page", "/jobs?cursor={cursor}", "admin"),
    ("page: jobs, a deep page", "/jobs?cursor={deep_cursor}", "admin"),
    ("page: jobs, completed", "/jobs?status=completed", "admin"),
    ("page: jobs, scheduled", "/jobs?view=scheduled", "admin"),
    ("page: jobs, retrying", "/jobs?view=retrying", "admin"),
    ("page: jobs, task", "/jobs?task=bench.task_3", "admin"),
    ("page: jobs, queue", "/jobs?queue=queue_2", "admin"),
    ("page: jobs, tenant", "/jobs?tenant=tenant_07", "admin"),
    ("page: jobs, task, queue, tenant",
     "/jobs?task=bench.task_3&queue=queue_2&tenant=tenant_07", "admin"),
    ("page: jobs, search by key", "/jobs?q={key}", "admin"),
    ("page: jobs, search by id (a redirect)", "/jobs?q={job}", "admin"),
    ("page: jobs, tenant key", "/jobs", "tenant"),
    ("page: a job", "/jobs/{job}", "admin"),
    ("page: a finished job", "/jobs/{finished_job}", "admin"),
    ("page: dead letters", "/dead-letters", "admin"),
    ("page: dead letters, task", "/dead-letters?task=bench.task_3", "admin"),
    ("page: dead letters, tenant key", "/dead-letters", "tenant"),
    ("page: schedules", "/schedules", "admin"),
    ("page: queues", "/queues", "admin"),
    ("page: workers", "/workers", "admin"),
]  # fmt: skip


@dataclass(frozen=True)
class Fill:
    finished: int
    pending: int
    running: int = 50


def run(fresh_url: Callable[[str], str], store: str, finished: int, rounds: int) -> dict[str, Any]:
    """Fill a fresh store, serve it, time every path of PAGES; the numbers as a dict."""
    url = fresh_url("dashboard")
    fill = Fill(finished, max(1, finished // 100))
    app = make_app(url)
    app.migrate()
    started = time.perf_counter()
    progress(f"dashboard: filling {store} with {fill.finished:,} finished and {fill.pending:,} "
             "pending jobs")  # fmt: skip
    (_fill_sqlite if store == "sqlite" else _fill_postgres)(url, fill)
    filled = time.perf_counter() - started
    progress(f"dashboard: filled in {filled:.0f} s; running a few jobs for real")
    _run_real_jobs(app)
    admin = app.create_key("bench admin")[1]
    tenant = app.create_key("bench tenant", tenant="tenant_07")[1]
    facts = _facts(app)
    app.close()
    keys = {"admin": admin, "tenant": tenant}
    with _served(url) as port:
        rows = [_time_path(port, label, path.format(**facts), keys[who], rounds)
                for label, path, who in PAGES]  # fmt: skip
    return {"store": store, "finished": fill.finished, "pending": fill.pending,
            "running": fill.running, "fill_seconds": filled, "rounds": rounds, "paths": rows,
            "budget_ms": BUDGET_MS}  # fmt: skip


# --- filling ------------------------------------------------------------------------------------

# Columns both fills compute alike, from i (the job's number) and t (its creation, Unix
# seconds); `pick(n)` is i modulo n.
SQLITE_ROWS = """
WITH RECURSIVE s(i) AS (SELECT :first UNION ALL SELECT i + 1 FROM s WHERE i < :last),
g AS (SELECT i, :origin + i * :step AS t FROM s)
INSERT INTO underway_jobs (id, task, title, args, queue, priority, status, attempt,
    max_attempts, rescues, run_at, result, error_message, error_type, error_traceback, tenant,
    key, schedule, created_at, started_at, completed_at, updated_at, worker_id, lease_token,
    lease_expires_at)
SELECT printf('%08x-%04x-7000-8000-%012x', CAST(t * 1000 AS INTEGER) / 65536,
              CAST(t * 1000 AS INTEGER) % 65536, i),
       'bench.task_' || (i % 10), 'bench.task_' || (i % 10), '{{"size": ' || (i % 7) || '}}',
       'queue_' || (i / 3 % 5), 0, {status}, {attempt}, 4, 0, {run_at},
       CASE WHEN {status} = 'completed' THEN 'null' END,
       CASE WHEN {failed} THEN 'bench failure ' || (i % 13) END,
       CASE WHEN {failed} THEN 'ValueError' END,
       CASE WHEN {failed} THEN 'Traceback (most recent call last):' || char(10) || '  ...' END,
       CASE WHEN i % 21 = 0 THEN NULL ELSE printf('tenant_%02d', i % 21 - 1) END,
       CASE WHEN i % 10 = 0 THEN 'order-' || i END,
       CASE WHEN i % 100 = 1 THEN 'bench.every_minute' END,
       t, {started_at}, {completed_at}, coalesce({completed_at}, t), {worker}, {worker},
       {lease}
FROM g
"""
SQLITE_FINISHED = {
    "status": "CASE WHEN i % 53 = 7 THEN 'failed' WHEN i % 199 = 11 THEN 'cancelled' "
    "ELSE 'completed' END",
    "failed": "i % 53 = 7",
    "attempt": "CASE WHEN i % 199 = 11 THEN 0 ELSE 1 END",
    "run_at": "t",
    "started_at": "CASE WHEN i % 199 = 11 THEN NULL ELSE t + 0.001 END",
    "completed_at": "t + 0.002 + (i % 500) / 1000.0",
    "worker": "NULL",
    "lease": "NULL",
}
SQLITE_PENDING = {
    "status": "'pending'",
    "failed": "i % 5 = 0",
    "attempt": "CASE WHEN i % 5 = 0 THEN 1 ELSE 0 END",
    "run_at": "CASE WHEN i % 4 = 0 THEN :now + 3600 ELSE t END",
    "started_at": "NULL",
    "completed_at": "NULL",
    "worker": "NULL",
    "lease": "NULL",
}
SQLITE_RUNNING = {
    "status": "'running'",
    "failed": "false",
    "attempt": "1",
    "run_at": "t",
    "started_at": "t",
    "completed_at": "NULL",
    "worker": "'bench-worker'",
    "lease": ":now + 3600",
}

# PostgreSQL: the same rows. The id is a UUIDv7 built from t's milliseconds and i.
POSTGRES_ROWS = """
INSERT INTO {table} (id, task, title, args, queue, priority, status, ready, attempt,
    max_attempts, rescues, run_at, result, error_message, error_type, error_traceback, tenant,
    key, schedule, created_at, started_at, completed_at, updated_at, worker_id, lease_token,
    lease_expires_at)
SELECT (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7000' || '8'
        || lpad(to_hex(i), 15, '0'))::uuid,
       'bench.task_' || (i % 10), 'bench.task_' || (i % 10),
       jsonb_build_object('size', i % 7), 'queue_' || (i / 3 % 5), 0, {status},
       {run_at} <= now(), {attempt}, 4, 0, {run_at},
       CASE WHEN {status} = 'completed' THEN 'null'::jsonb END,
       CASE WHEN {failed} THEN 'bench failure ' || (i % 13) END,
       CASE WHEN {failed} THEN 'ValueError' END,
       CASE WHEN {failed} THEN 'Traceback (most recent call last):' || chr(10) || '  ...' END,
       CASE WHEN i % 21 = 0 THEN NULL ELSE 'tenant_' || lpad((i % 21 - 1)::text, 2, '0') END,
       CASE WHEN i % 10 = 0 THEN 'order-' || i END,
       CASE WHEN i % 100 = 1 THEN 'bench.every_minute' END,
       t, {started_at}, {completed_at}, coalesce({completed_at}, t), {worker}, {worker},
       {lease}
FROM (SELECT i, to_timestamp(%(origin)s + i * %(step)s) AS t
      FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS i) AS g
"""
POSTGRES_FINISHED = {
    **SQLITE_FINISHED,
    "started_at": "CASE WHEN i % 199 = 11 THEN NULL ELSE t + interval '1 ms' END",
    "completed_at": "t + interval '2 ms' + (i % 500) * interval '1 ms'",
}
POSTGRES_PENDING = {
    **SQLITE_PENDING,
    "run_at": "CASE WHEN i % 4 = 0 THEN now() + interval '1 hour' ELSE t END",
    "completed_at": "NULL::timestamptz",
    "started_at": "NULL::timestamptz",
}
POSTGRES_RUNNING = {**SQLITE_RUNNING, "completed_at": "NULL::timestamptz",
                    "lease": "now() + interval '1 hour'"}  # fmt: skip
CHUNK = 100_000


def _chunks(first: int, count: int) -> list[tuple[int, int]]:
    return [(a, min(a + CHUNK, first + count) - 1) for a in range(first, first + count, CHUNK)]


def _fill_sqlite(url: str, fill: Fill) -> None:
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 60000")
    now = time.time()
    origin = now - SPAN_SECONDS
    parts = [(SQLITE_FINISHED, 0, fill.finished, SPAN_SECONDS / fill.finished),
             (SQLITE_PENDING, fill.finished, fill.pending, 60.0 / fill.pending),
             (SQLITE_RUNNING, fill.finished + fill.pending, fill.running, 0.001)]  # fmt: skip
    for columns, first, count, step in parts:
        # Pending and running jobs are the newest: created over the last minute.
        start = origin if columns is SQLITE_FINISHED else now - 60 - first * step
        sql = SQLITE_ROWS.format(**columns)
        for a, b in _chunks(first, count):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(sql, {"first": a, "last": b, "origin": start, "step": step, "now": now})
            conn.execute("COMMIT")
            progress(f"  {b + 1:,} rows")
    conn.execute("DELETE FROM underway_changes")
    conn.close()


def _fill_postgres(url: str, fill: Fill) -> None:
    import psycopg
    from yardstick_postgres import split_url

    conninfo, schema = split_url(url)
    table = psycopg.sql.Identifier(schema).as_string() + ".underway_jobs"
    now = time.time()
    parts = [
        (POSTGRES_FINISHED, 0, fill.finished, now - SPAN_SECONDS, SPAN_SECONDS / fill.finished),
        (POSTGRES_PENDING, fill.finished, fill.pending, None, 60.0 / fill.pending),
        (POSTGRES_RUNNING, fill.finished + fill.pending, fill.running, None, 0.001),
    ]
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for columns, first, count, origin, step in parts:
            start = origin if origin is not None else now - 60 - first * step
            # psycopg reads % as a placeholder: the modulo operators are doubled.
            sql = re.sub(r"%(?!\()", "%%", POSTGRES_ROWS.format(table=table, **columns))
            for a, b in _chunks(first, count):
                conn.execute(sql, {"first": a, "last": b, "origin": start, "step": step})
                progress(f"  {b + 1:,} rows")
        conn.execute(f"DELETE FROM {psycopg.sql.Identifier(schema).as_string()}.underway_changes")
        conn.execute(f"ANALYZE {table}")


def _run_real_jobs(app: Any) -> None:
    """A few jobs of the flaky task, run by a burst worker on their queue only: each fails
    once, then completes, so it has two attempts."""
    task = app.get_task(FLAKY_TASK)
    for _ in range(3):
        task.enqueue()
    app.run_worker(queues=["detail"], concurrency=3, burst=True)


def _facts(app: Any) -> dict[str, str]:
    """What the paths of PAGES need from the filled store."""
    now = datetime.now(UTC)
    page = app.list_jobs(limit=50)
    deep = app.list_jobs(created_before=now - timedelta(hours=3), limit=1)
    real = app.list_jobs(task=FLAKY_TASK, limit=1).jobs[0]
    keyed = app.list_jobs(status="completed", task="bench.task_0", limit=1).jobs[0]

    def when(hours: float) -> str:
        return quote((now - timedelta(hours=hours)).isoformat())

    return {
        "cursor": page.next_cursor or "", "deep_cursor": str(deep.jobs[0].id),
        "job": str(real.id), "finished_job": str(keyed.id), "key": quote(keyed.key or ""),
        "hour_ago": when(1), "four_hours_ago": when(4), "five_hours_ago": when(5),
    }  # fmt: skip


# --- serving and timing -------------------------------------------------------------------------


class _served:
    """`underway serve dashboard_app:app` on a free loopback port, for a with-block."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        path = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
        env = {**os.environ, "UNDERWAY_DATABASE_URL": self.url, "PYTHONPATH": path}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "underway", "serve", "dashboard_app:app", "--host",
             "127.0.0.1", "--port", str(port)],
            cwd=HERE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"underway serve exited: {err[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return port
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("underway serve did not listen within 60 s")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _time_path(port: int, label: str, path: str, key: str, rounds: int) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    api = path.startswith(("/api/", "/health", "/metrics"))
    headers = {"Authorization": f"Bearer {key}"} if api else {"Cookie": f"{SESSION_COOKIE}={key}"}
    times, statuses, size = [], set(), 0
    for n in range(rounds + 1):
        began = time.perf_counter()
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        took = (time.perf_counter() - began) * 1000
        statuses.add(response.status)
        size = len(body)
        if n:  # the first request warms the server's caches and statement plans
            times.append(took)
    conn.close()
    return {"label": label, "path": path, "p50_ms": statistics.median(times),
            "max_ms": max(times), "statuses": sorted(statuses), "bytes": size}  # fmt: skip


def print_report(data: dict[str, Any]) -> None:
    from report import say, table

    over = [r for r in data["paths"] if r["max_ms"] >= data["budget_ms"]]
    table(
        f"dashboard requests on {data['store']}: {data['finished']:,} finished, "
        f"{data['pending']:,} pending, {data['running']} running jobs "
        f"(filled in {data['fill_seconds']:.0f} s); {data['rounds']} timed requests per path",
        [("request", "left"), ("p50 ms", "right"), ("max ms", "right"), ("status", "right"),
         ("bytes", "right"), ("", "left")],
        [[r["label"], f"{r['p50_ms']:.1f}", f"{r['max_ms']:.1f}",
          ",".join(str(s) for s in r["statuses"]), f"{r['bytes']:,}",
          "OVER 500 ms" if r in over else ""] for r in data["paths"]],
    )  # fmt: skip
    # /health answers 503 (no worker is alive), a search by id redirects to the job (303)
    bad = [r for r in data["paths"] if r["statuses"] != [200]]
    text = f"{len(over)} of {len(data['paths'])} requests over {data['budget_ms']:.0f} ms at worst"
    say(text + (f"; not 200: {', '.join(r['label'] for r in bad)}" if bad else ""))
    say("")
