"""The SQLite yardstick: the same work done with raw sqlite3 statements in one process, on the
same schema (created by underway's own migration) with the same pragmas (WAL,
synchronous=NORMAL). It is the limit the library is measured against in the same run.

Rows are built before the clock starts, so the yardstick times SQLite and the sqlite3 module
only. Ids are time-ordered like UUIDv7 so the primary key grows at its right edge as ours does.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable
from typing import Any

from bench_app import NOOP_TASK, make_app

INSERT = (
    "INSERT INTO underway_jobs (id, task, title, args, queue, priority, status, max_attempts, "
    "run_at, status_message, tenant, callback_url, key, created_at, updated_at) "
    "VALUES (?, ?, ?, '{}', 'default', 0, 'pending', 4, ?, NULL, NULL, NULL, NULL, ?, ?)"
)

# A claim the claim index can serve in order: queue equality, then priority, run_at, id.
CLAIM = """
UPDATE underway_jobs
SET status = 'running', attempt = attempt + 1, lease_token = lower(hex(randomblob(8))),
    lease_expires_at = :now + 30, worker_id = 'yardstick', started_at = :now, updated_at = :now
WHERE id IN (
    SELECT id FROM underway_jobs
    WHERE status = 'pending' AND queue = 'default' AND run_at <= :now
    ORDER BY priority DESC, run_at, id
    LIMIT :limit
)
RETURNING id, lease_token
"""

COMPLETE = (
    "UPDATE underway_jobs SET status = 'completed', result = 'null', completed_at = ?, "
    "lease_token = NULL, lease_expires_at = NULL, worker_id = NULL, updated_at = ? "
    "WHERE id = ? AND lease_token = ? AND status = 'running'"
)

FreshUrl = Callable[[str], str]


def run(fresh_url: FreshUrl, n: int) -> list[dict[str, Any]]:
    """Every yardstick, as report rows: {key, workload, jobs_per_s, seconds, jobs}."""
    rows = [
        _row("insert_one", "raw INSERT, one per transaction", n, insert_one(fresh_url, n)),
        _row(
            "insert_chunks",
            f"raw executemany INSERT, {min(n, 1000):,} per transaction",
            n,
            insert_many(fresh_url, n, 1000),
        ),
        _row(
            "insert_whole",
            f"raw executemany INSERT, {n:,} in one transaction",
            n,
            insert_many(fresh_url, n, n),
        ),
        _row(
            "claim_one",
            "raw claim + complete, one job per transaction",
            n,
            claim_complete(fresh_url, n, 1),
        ),
        _row(
            "claim_batch",
            "raw claim 100 + complete 100 (executemany) per transaction",
            n,
            claim_complete(fresh_url, n, 100),
        ),
    ]
    underway_claim = _underway_claim_sql()
    if underway_claim is not None:
        rows.append(
            _row(
                "claim_batch_underway_sql",
                "as above, with underway's own claim statement (diagnostic)",
                n,
                claim_complete(fresh_url, n, 100, claim_sql=underway_claim),
            )
        )
    return rows


def _row(key: str, workload: str, n: int, seconds: float) -> dict[str, Any]:
    return {
        "key": key,
        "workload": workload,
        "jobs": n,
        "seconds": seconds,
        "jobs_per_s": n / seconds if seconds > 0 else None,
    }


def _open(fresh_url: FreshUrl, label: str) -> sqlite3.Connection:
    """A new database with underway's schema, opened raw with underway's pragmas."""
    url = fresh_url(label)
    app, _ = make_app(url)
    app.migrate()
    app.close()
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 60000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    # Warm up as underway's connection is warm after its migration: the schema is read and
    # the WAL file exists before the clock starts.
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(INSERT, _job_rows(1)[0])
    conn.execute("DELETE FROM underway_jobs")
    conn.execute("COMMIT")
    return conn


def _job_rows(n: int) -> list[tuple[Any, ...]]:
    now = time.time()
    ms = int(now * 1000)
    base = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | 0b10 << 62
    return [(str(uuid.UUID(int=base | i)), NOOP_TASK, NOOP_TASK, now, now, now) for i in range(n)]


def _fill(conn: sqlite3.Connection, n: int) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(INSERT, _job_rows(n))
    conn.execute("COMMIT")


def insert_one(fresh_url: FreshUrl, n: int) -> float:
    conn = _open(fresh_url, "yardstick-insert-one")
    rows = _job_rows(n)
    start = time.perf_counter()
    for row in rows:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(INSERT, row)
        conn.execute("COMMIT")
    seconds = time.perf_counter() - start
    conn.close()
    return seconds


def insert_many(fresh_url: FreshUrl, n: int, chunk: int) -> float:
    conn = _open(fresh_url, f"yardstick-insert-{chunk}")
    rows = _job_rows(n)
    start = time.perf_counter()
    for i in range(0, n, chunk):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT, rows[i : i + chunk])
        conn.execute("COMMIT")
    seconds = time.perf_counter() - start
    conn.close()
    return seconds


def claim_complete(fresh_url: FreshUrl, n: int, batch: int, claim_sql: str = CLAIM) -> float:
    """Claim `batch` jobs in one transaction, complete them in the next, until none is left."""
    conn = _open(fresh_url, f"yardstick-claim-{batch}")
    _fill(conn, n)
    params: dict[str, Any] = {"limit": batch, "lease": 30.0, "worker_id": "yardstick"}
    columns: tuple[int, int] | None = None  # where id and lease_token are in a returned row
    done = 0
    start = time.perf_counter()
    while True:
        params["now"] = time.time()
        conn.execute("BEGIN IMMEDIATE")
        cursor = conn.execute(claim_sql, params)
        claimed = cursor.fetchall()
        conn.execute("COMMIT")
        if not claimed:
            break
        if columns is None:
            names = [d[0] for d in cursor.description]
            columns = (names.index("id"), names.index("lease_token"))
        ident, token = columns
        now = time.time()
        conn.execute("BEGIN IMMEDIATE")
        if len(claimed) == 1:
            conn.execute(COMPLETE, (now, now, claimed[0][ident], claimed[0][token]))
        else:
            conn.executemany(COMPLETE, [(now, now, c[ident], c[token]) for c in claimed])
        conn.execute("COMMIT")
        done += len(claimed)
    seconds = time.perf_counter() - start
    conn.close()
    if done != n:
        raise RuntimeError(f"yardstick claimed {done} jobs, expected {n}")
    return seconds


def _underway_claim_sql() -> str | None:
    """underway's own claim statement as a worker serving all queues runs it, or None if the
    store module's internals moved."""
    try:
        from underway.stores.sqlite.store import _render_claims
    except ImportError:
        return None
    return _render_claims().get("all")


def explain(fresh_url: FreshUrl, pending: int) -> list[str]:
    """Query plans of the worker's hot statements on a table with `pending` due jobs, and what
    one execution of each costs there (inside a transaction that is rolled back). These read
    the store module's statements, which are internals: if they moved, say so and go on."""
    try:
        return _explain(fresh_url, pending)
    except (ImportError, KeyError, sqlite3.Error) as exc:
        return [f"(no query plans: underway's SQLite statements changed shape: {exc!r})"]


def _explain(fresh_url: FreshUrl, pending: int) -> list[str]:
    from underway.stores.sqlite.store import _queue_shape, _render_by_shape, _render_claims

    conn = _open(fresh_url, "explain")
    _fill(conn, pending)
    now = time.time() + 1
    claims, next_due = _render_claims(), _render_by_shape("next_due")
    shape, queue_params = _queue_shape(["default"])
    statements: list[tuple[str, str, dict[str, Any]]] = [
        (
            "claim, worker on all queues",
            claims["all"],
            {"now": now, "lease": 30.0, "worker_id": "x", "limit": 10},
        ),
        (
            "claim, worker on queues=['default']",
            claims[shape],
            {"now": now, "lease": 30.0, "worker_id": "x", "limit": 10, **queue_params},
        ),
        ("next_due, all queues", next_due["all"], {}),
        ("yardstick claim (queue = 'default')", CLAIM, {"now": now, "limit": 10}),
    ]
    lines = [f"{pending:,} pending jobs; each statement run 20 times, rolled back:"]
    for title, sql, params in statements:
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
        runs = 20
        start = time.perf_counter()
        for _ in range(runs):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(sql, params).fetchall()
            conn.execute("ROLLBACK")
        ms = (time.perf_counter() - start) / runs * 1000
        lines.append(f"  {title}: {ms:.3f} ms per execution")
        lines.extend(f"      {step}" for step in plan)
    conn.close()
    return lines
