"""The PostgreSQL yardstick: the same work done with raw psycopg statements, on the same table
(created by underway's own migration), measured in the same run. It is the limit the library
is held against.

- inserts: one INSERT per transaction (autocommit), and COPY (binary) in chunks of 1,000 rows
  and of all N rows in one transaction; rows are built before the clock starts;
- claim + complete: the minimal `FOR UPDATE SKIP LOCKED` loop, run by 1, 2 and 4 processes
  with one connection each, started together (procs.py). Per transaction it locks the next 1
  (or 10) due jobs in underway's claim order, marks them completed and commits;
- the lease-style loop (diagnostic): the shape underway's protocol needs, two autocommit
  statements per batch: claim (mark running with a lease token) and complete (token checked).

`python benchmarks/yardstick_postgres.py claim URL --batch K --style tx|lease` is one claiming
process (the runner starts them).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import procs
import psycopg
from bench_app import NOOP_TASK, make_app
from procs import wait_for_go
from psycopg import postgres, sql
from psycopg.adapt import Dumper
from psycopg.pq import Format

FreshUrl = Callable[[str], str]
SCRIPT = Path(__file__)
PROCESSES = (1, 2, 4)

COLUMNS = (
    "id, task, title, args, queue, priority, status, ready, max_attempts, run_at, created_at, "
    "updated_at"
)
COPY_TYPES = [
    "uuid", "text", "text", "jsonb", "text", "int4", "text", "bool", "int4", "timestamptz",
    "timestamptz", "timestamptz",
]  # fmt: skip
INSERT = f"INSERT INTO {{table}} ({COLUMNS}) VALUES ({', '.join(['%s'] * 12)})"

# The minimal loop: lock the next due jobs in claim order, complete them, commit.
LOCK_NEXT = """
SELECT id FROM {table}
WHERE status = 'pending' AND ready
ORDER BY priority DESC, run_at, id
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED
"""
COMPLETE_LOCKED = """
UPDATE {table}
SET status = 'completed', attempt = attempt + 1, started_at = now(), completed_at = now(),
    result = 'null', updated_at = now()
WHERE id = ANY(%(ids)s)
"""
# Lease style: what a worker that runs a job outside the claiming transaction needs.
CLAIM_LEASE = """
UPDATE {table} AS j
SET status = 'running', attempt = j.attempt + 1, lease_token = md5(random()::text),
    lease_expires_at = now() + interval '30 seconds', worker_id = 'yardstick',
    started_at = now(), updated_at = now()
WHERE j.id IN (
    SELECT id FROM {table}
    WHERE status = 'pending' AND ready
    ORDER BY priority DESC, run_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
RETURNING j.id, j.lease_token
"""
COMPLETE_LEASE = """
UPDATE {table} AS j
SET status = 'completed', result = 'null', completed_at = now(), lease_token = NULL,
    lease_expires_at = NULL, worker_id = NULL, updated_at = now()
FROM unnest(%(ids)s::uuid[], %(tokens)s::text[]) AS u(id, token)
WHERE j.id = u.id AND j.lease_token = u.token AND j.status = 'running'
"""


class _Json(str):
    """Already-encoded JSON text."""


class _JsonbBinaryDumper(Dumper):
    """jsonb's binary form is a version byte and the JSON text."""

    format = Format.BINARY
    oid = postgres.types["jsonb"].oid

    def dump(self, obj: Any) -> bytes:
        return b"\x01" + str(obj).encode()


# --- URLs and tables --------------------------------------------------------------------------


def split_url(url: str) -> tuple[str, str]:
    """(libpq conninfo, schema) from an underway URL with `?schema=`."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), "public")
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    scheme = "postgresql" if parts.scheme in ("postgres", "postgresql") else parts.scheme
    return urlunsplit((scheme, parts.netloc, parts.path, rest, parts.fragment)), schema


def table_of(schema: str) -> str:
    return sql.Identifier(schema).as_string() + ".underway_jobs"


def _open(fresh_url: FreshUrl, label: str) -> tuple[str, psycopg.Connection[Any]]:
    """A new schema with underway's tables, and a raw autocommit connection to it."""
    url = fresh_url(label)
    app, _ = make_app(url)
    app.migrate()
    app.close()
    conn = psycopg.connect(split_url(url)[0], autocommit=True)
    conn.adapters.register_dumper(_Json, _JsonbBinaryDumper)
    return url, conn


def job_rows(n: int, *, due: bool = True) -> list[tuple[Any, ...]]:
    """N pending jobs as COPY/INSERT rows, ids time-ordered like UUIDv7."""
    now = time.time()
    ms = int(now * 1000)
    base = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | 0b10 << 62
    stamp = datetime.fromtimestamp(now, UTC)
    args = _Json("{}")
    return [
        (uuid.UUID(int=base | i), NOOP_TASK, NOOP_TASK, args, "default", 0, "pending", due, 4,
         stamp, stamp, stamp)
        for i in range(n)
    ]  # fmt: skip


def copy_rows(conn: psycopg.Connection[Any], table: str, rows: Sequence[tuple[Any, ...]]) -> None:
    with (
        conn.cursor() as cur,
        cur.copy(f"COPY {table} ({COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.set_types(COPY_TYPES)
        for row in rows:
            copy.write_row(row)


# --- the yardsticks ---------------------------------------------------------------------------


def run(fresh_url: FreshUrl, n: int, processes: Sequence[int] = PROCESSES) -> list[dict[str, Any]]:
    """Every yardstick, as report rows: {key, workload, jobs_per_s, seconds, jobs}."""
    rows = [
        _row("insert_one", "raw INSERT, one per transaction (autocommit)", n,
             insert_one(fresh_url, n)),
        _row("insert_chunks", f"raw COPY, {min(n, 1000):,} rows per transaction", n,
             insert_copy(fresh_url, n, 1000)),
        _row("insert_whole", f"raw COPY, {n:,} rows in one transaction", n,
             insert_copy(fresh_url, n, n)),
    ]  # fmt: skip
    for style, batch, key, title in (
        ("tx", 1, "claim_one", "SKIP LOCKED claim + complete, 1 job per transaction"),
        ("tx", 10, "claim_batch", "SKIP LOCKED claim + complete, 10 jobs per transaction"),
        ("lease", 10, "claim_lease", "lease style: claim 10, then complete 10 (2 commits)"),
    ):
        for p in processes:
            seconds = claim_complete(fresh_url, n, batch, style, p)
            row = _row(f"{key}_p{p}", f"{title}, {p} process{'es' if p > 1 else ''}", n, seconds)
            rows.append({**row, "processes": p, "batch": batch, "style": style})
    return rows


def _row(key: str, workload: str, n: int, seconds: float) -> dict[str, Any]:
    return {
        "key": key,
        "workload": workload,
        "jobs": n,
        "seconds": seconds,
        "jobs_per_s": n / seconds if seconds > 0 else None,
    }


def insert_one(fresh_url: FreshUrl, n: int) -> float:
    url, conn = _open(fresh_url, "yardstick-insert-one")
    text = INSERT.format(table=table_of(split_url(url)[1]))
    rows = job_rows(n)
    conn.execute(text, rows[0])  # warm up: connection, catalog, first WAL write
    conn.execute(f"DELETE FROM {table_of(split_url(url)[1])}")
    start = time.perf_counter()
    for row in rows:
        conn.execute(text, row)
    seconds = time.perf_counter() - start
    conn.close()
    return seconds


def insert_copy(fresh_url: FreshUrl, n: int, chunk: int) -> float:
    url, conn = _open(fresh_url, f"yardstick-copy-{chunk}")
    table = table_of(split_url(url)[1])
    rows = job_rows(n)
    with conn.transaction():
        copy_rows(conn, table, rows[:1])
        conn.execute(f"DELETE FROM {table}")
    start = time.perf_counter()
    for i in range(0, n, chunk):
        with conn.transaction():
            copy_rows(conn, table, rows[i : i + chunk])
    seconds = time.perf_counter() - start
    conn.close()
    return seconds


def claim_complete(fresh_url: FreshUrl, n: int, batch: int, style: str, processes: int) -> float:
    """N due jobs, then `processes` processes claim and complete them until none is left."""
    url, conn = _open(fresh_url, f"yardstick-{style}{batch}-p{processes}")
    table = table_of(split_url(url)[1])
    with conn.transaction():
        copy_rows(conn, table, job_rows(n))
    conn.execute(f"ANALYZE {table}")  # as autovacuum would after a load (it may be off here)
    cmd = [sys.executable, str(SCRIPT), "claim", url, "--batch", str(batch), "--style", style]
    results = procs.run_together([cmd] * processes, timeout=max(600, n / 50))
    done = sum(r["done"] for r in results)
    left = conn.execute(f"SELECT count(*) FROM {table} WHERE status <> 'completed'").fetchone()
    conn.close()
    if done != n or (left and left[0]):
        raise RuntimeError(f"yardstick completed {done} jobs, expected {n} ({left} left)")
    return procs.span(results)


def claim_worker(url: str, batch: int, style: str) -> dict[str, Any]:
    """One claiming process: loop until no job is left; report wall-clock start and end."""
    conninfo, schema = split_url(url)
    table = table_of(schema)
    conn = psycopg.connect(conninfo, autocommit=True)
    lock_next = LOCK_NEXT.format(table=table)
    complete_locked = COMPLETE_LOCKED.format(table=table)
    claim_lease = CLAIM_LEASE.format(table=table)
    complete_lease = COMPLETE_LEASE.format(table=table)
    params = {"limit": batch}
    with conn.transaction(force_rollback=True):  # warm up: catalog, plan
        conn.execute(lock_next, params).fetchall()
    wait_for_go()
    done = 0
    started = time.time()
    if style == "tx":
        while True:
            with conn.transaction():
                ids = [row[0] for row in conn.execute(lock_next, params)]
                if ids:
                    conn.execute(complete_locked, {"ids": ids})
            if not ids:
                break
            done += len(ids)
    else:
        while True:
            claimed = conn.execute(claim_lease, params).fetchall()
            if not claimed:
                break
            ids = [row[0] for row in claimed]
            tokens = [row[1] for row in claimed]
            conn.execute(complete_lease, {"ids": ids, "tokens": tokens})
            done += len(ids)
    ended = time.time()
    conn.close()
    return {"started": started, "ended": ended, "done": done}


# --- query plans --------------------------------------------------------------------------------


def explain(fresh_url: FreshUrl, pending: int) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the worker's hot statements on a table with `pending` due
    jobs, each in a transaction that is rolled back, and what one execution costs there.
    These read the store module's statements, which are internals: if they moved, say so."""
    try:
        return _explain(fresh_url, pending)
    except (ImportError, KeyError, AttributeError, psycopg.Error) as exc:
        return [f"(no query plans: underway's PostgreSQL statements changed shape: {exc!r})"]


def claim_statements(store: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """(title, SQL, params) of the store's claim as a worker on all queues and on one queue
    sends it, and of next_due."""
    from underway.stores.postgres.store import _queue_shape

    base = {"limit": 10, "lease": 30.0, "worker_id": "explain"}
    shape, one_params = _queue_shape(["default"])
    return [
        ("claim 10, worker on all queues", store.claims.statement("all"), base),
        ("claim 10, worker on queues=['default']", store.claims.statement(shape),
         {**base, **one_params}),
        ("next_due, all queues", store.next_due_sql["all"], {}),
    ]  # fmt: skip


def explain_lines(
    conn: psycopg.Connection[Any], title: str, text: str, params: dict[str, Any], runs: int = 20
) -> list[str]:
    """One statement's plan with actual times and buffers, then its mean over `runs` rolled
    back executions."""
    with conn.transaction(force_rollback=True):
        plan = [r[0] for r in conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + text, params)]
    start = time.perf_counter()
    for _ in range(runs):
        with conn.transaction(force_rollback=True):
            conn.execute(text, params).fetchall()
    mean_ms = (time.perf_counter() - start) / runs * 1000
    return [f"  {title}: {mean_ms:.3f} ms per execution (mean of {runs}, rolled back)"] + [
        f"      {line}" for line in plan
    ]


def _explain(fresh_url: FreshUrl, pending: int) -> list[str]:
    url, conn = _open(fresh_url, "explain")
    table = table_of(split_url(url)[1])
    with conn.transaction():
        copy_rows(conn, table, job_rows(pending))
    conn.execute(f"ANALYZE {table}")
    app, _ = make_app(url)
    statements = claim_statements(app.store)
    statements.append(("yardstick: lock the next 10", LOCK_NEXT.format(table=table), {"limit": 10}))
    lines = [f"{pending:,} due pending jobs (table analyzed):"]
    for title, text, params in statements:
        lines += explain_lines(conn, title, text, params)
    app.close()
    conn.close()
    return lines


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="one claiming process of the yardstick")
    parser.add_argument("mode", choices=("claim",))
    parser.add_argument("url")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--style", choices=("tx", "lease"), default="tx")
    args = parser.parse_args(argv)
    print(json.dumps(claim_worker(args.url, args.batch, args.style)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
