"""Claim latency on a big PostgreSQL table (`./run bench --scale`).

Fills a schema (underway's own, from migrate) straight from SQL with `INSERT ... SELECT
generate_series`, rows shaped as the store writes them:

- F finished jobs (completed, ready = true, attempt 1, started/completed over the last 6 days);
- S scheduled jobs (pending, ready = false, run_at from 1 hour to 30 days ahead);
- D due jobs (pending, ready = true, run_at a moment ago; D = 10,030 so that the 3 warm-up
  claims and C = 1,000 measured claims of 10 all find work);

then times `store.claim(10 jobs)` followed by `store.finish` of those jobs, over C claims
(p50/p95/p99 of each), prints EXPLAIN (ANALYZE, BUFFERS) of the claim statement, and does the
same on a table holding only the D due jobs, for comparison. With time left it adds a million
due jobs to the big table and measures again. One more case: 100,000 jobs enqueued together
with a delay, now due: they share one run_at and stay staged (ready = false) until claimed, so
they are claimed through the staged index. Ids are time-ordered like UUIDv7.

The server here may run with autovacuum off; the fill ends with ANALYZE, as autovacuum would
after such a load, so the planner knows the table.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from bench_app import make_app
from report import progress
from yardstick_postgres import claim_statements, explain_lines, split_url, table_of

from underway.stores.messages import Outcome

# Bytes a finished job takes on disk with its index entries (measured: 320 MB per million),
# with room for WAL and the index builds.
BYTES_PER_ROW = 600

FINISHED_SQL = """
INSERT INTO {table} (id, task, title, args, queue, priority, status, ready, attempt,
    max_attempts, rescues, run_at, result, created_at, started_at, completed_at, updated_at)
SELECT (lpad(to_hex(g.ms), 12, '0') || '7000' || '8' || lpad(to_hex(g.i), 15, '0'))::uuid,
    'bench.noop', 'bench.noop', '{{}}'::jsonb, 'default', 0, 'completed', true, 1, 4, 0,
    g.t, 'null'::jsonb, g.t, g.t + interval '1 ms', g.t + interval '4 ms', g.t + interval '4 ms'
FROM (
    SELECT i, %(origin)s + i * %(step)s AS ms,
           to_timestamp((%(origin)s + i * %(step)s) / 1000.0) AS t
    FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS i
) AS g
"""
PENDING_SQL = """
INSERT INTO {table} (id, task, title, args, queue, priority, status, ready, attempt,
    max_attempts, rescues, run_at, created_at, updated_at)
SELECT (lpad(to_hex(g.ms), 12, '0') || '7000' || '8' || lpad(to_hex(g.i), 15, '0'))::uuid,
    'bench.noop', 'bench.noop', '{{}}'::jsonb, 'default', 0, 'pending', %(ready)s, 0, 4, 0,
    g.run_at, g.t, g.t
FROM (
    SELECT i, %(origin)s + (i - %(offset)s) / 1000 AS ms,
           to_timestamp((%(origin)s + (i - %(offset)s) / 1000) / 1000.0) AS t,
           now() + (%(run_in)s + (i - %(offset)s) * %(spread)s) * interval '1 second' AS run_at
    FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS i
) AS g
"""


@dataclass
class Fill:
    finished: int
    scheduled: int
    due: int
    staged_due: int = 0  # pending, ready = false, run_at passed: all at one instant


def run(
    fresh_url: Any,
    *,
    finished: int = 10_000_000,
    scheduled: int = 1_000_000,
    due: int = 10_030,
    claims: int = 1_000,
    big_due: int = 1_000_000,
    staged_due: int = 100_000,
    budget_s: float = 600.0,
) -> dict[str, Any]:
    """The whole scale run; returns rows and text for the report."""
    started = time.monotonic()
    out: dict[str, Any] = {"disk": _df(), "cases": [], "explain": []}
    free = _free_bytes()
    need = finished * BYTES_PER_ROW
    out["disk_free_bytes"], out["disk_needed_bytes"] = free, need
    if free is not None and free < need:
        out["skipped"] = (
            f"needs about {need / 1e9:.1f} GB free on the database disk, has {free / 1e9:.1f} GB"
        )
        return out

    # Empty table first: the floor to compare against.
    progress(f"scale: {due:,} due jobs on an empty table, {claims:,} claims of 10")
    case, lines = _measure(fresh_url("scale-empty"), Fill(0, 0, due), claims, "empty table")
    out["cases"].append(case)
    out["explain"] += lines

    # Jobs enqueued together with a delay (`options(delay=...).enqueue_many`) share one
    # run_at and stay staged (ready = false) until claimed.
    if staged_due:
        progress(f"scale: {staged_due:,} due jobs still staged, one run_at, 300 claims of 10")
        case, lines = _measure(
            fresh_url("scale-staged"), Fill(0, 0, 0, staged_due), 300,
            f"{staged_due:,} due jobs still staged (ready = false, one run_at)",
        )  # fmt: skip
        out["cases"].append(case)
        out["explain"] += lines

    url = fresh_url("scale-big")
    progress(
        f"scale: filling {finished:,} finished + {scheduled:,} scheduled + {due:,} due jobs "
        "(a few minutes)"
    )
    case, lines = _measure(
        url, Fill(finished, scheduled, due), claims, f"{finished:,} finished + {scheduled:,} "
        f"scheduled (future) + {due:,} due"
    )  # fmt: skip
    out["cases"].append(case)
    out["explain"] += lines

    spent = time.monotonic() - started
    fill_rate = case["fill_rows_per_s"] or 1.0
    expected = big_due / fill_rate + 60
    if spent + expected > budget_s:
        out["big_due_skipped"] = (
            f"1M due jobs skipped: {spent:.0f} s spent, about {expected:.0f} s more needed, "
            f"budget {budget_s:.0f} s"
        )
    else:
        progress(f"scale: adding {big_due:,} due jobs to the big table")
        case, lines = _measure(
            url, Fill(0, 0, big_due), claims, f"{finished:,} finished + {scheduled:,} "
            f"scheduled (future) + {big_due:,} due", fill_only_new=True
        )  # fmt: skip
        out["cases"].append(case)
        out["explain"] += lines
    out["seconds"] = time.monotonic() - started
    return out


def _measure(
    url: str, fill: Fill, claims: int, title: str, *, fill_only_new: bool = False
) -> tuple[dict[str, Any], list[str]]:
    conninfo, schema = split_url(url)
    table = table_of(schema)
    app, _ = make_app(url)
    if not fill_only_new:
        app.migrate()
    store: Any = app.store
    conn = psycopg.connect(conninfo, autocommit=True)
    conn.execute("SET synchronous_commit = off")  # this session's fill only
    fill_start = time.perf_counter()
    rows = _fill(conn, table, fill)
    progress(f"scale: ANALYZE {table}")
    conn.execute(f"ANALYZE {table}")
    fill_seconds = time.perf_counter() - fill_start
    size = conn.execute(
        "SELECT pg_total_relation_size(%s), pg_relation_size(%s)", (table, table)
    ).fetchone()
    counts = dict(
        conn.execute(
            f"SELECT status || CASE WHEN status = 'pending' AND NOT ready THEN ' (not ready)' "
            f"ELSE '' END, count(*) FROM {table} GROUP BY 1"
        ).fetchall()
    )

    # Warm up as a running worker is warm (prepared statements, cached pages), then explain.
    for _ in range(3):
        _claim_and_finish(store)
    statements = claim_statements(store)
    lines = [f"{title}: {counts}"]
    for name, text, params in (statements[0], statements[2]):  # claim, next_due
        lines += explain_lines(conn, name, text, params)

    progress(f"scale: {claims:,} claims of 10 on {title}")
    claim_ms: list[float] = []
    finish_ms: list[float] = []
    claimed_total = 0
    for _ in range(claims):
        took_claim, took_finish, got = _claim_and_finish(store)
        if got == 0:
            break
        claimed_total += got
        claim_ms.append(took_claim)
        finish_ms.append(took_finish)
    app.close()
    conn.close()
    case = {
        "case": title,
        "counts": counts,
        "fill_rows": rows,
        "fill_seconds": fill_seconds,
        "fill_rows_per_s": rows / fill_seconds if rows and fill_seconds > 0 else None,
        "table_bytes": size[0] if size else None,
        "heap_bytes": size[1] if size else None,
        "claims": len(claim_ms),
        "claimed_jobs": claimed_total,
        "claim": _pcts(claim_ms),
        "finish": _pcts(finish_ms),
        "claim_plus_finish": _pcts([a + b for a, b in zip(claim_ms, finish_ms, strict=True)]),
    }
    return case, lines


def _claim_and_finish(store: Any) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    claimed = store.claim("scale-bench", None, 10)
    t1 = time.perf_counter()
    if claimed:
        store.finish([Outcome.completed(c.job.id, c.token, "null") for c in claimed])
    t2 = time.perf_counter()
    return (t1 - t0) * 1000, (t2 - t1) * 1000, len(claimed)


def _fill(conn: psycopg.Connection[Any], table: str, fill: Fill) -> int:
    """Insert the rows in chunks of a million, one transaction each. Returns rows inserted."""
    now_ms = int(time.time() * 1000)
    chunk = 1_000_000
    done = 0
    # Finished jobs over the last 6 days, one every (6 days / F) ms, ids counting from 1.
    if fill.finished:
        origin = now_ms - 6 * 24 * 3600 * 1000
        step = max(1, (6 * 24 * 3600 * 1000 - 120_000) // fill.finished)
        start = time.perf_counter()
        for first in range(1, fill.finished + 1, chunk):
            last = min(first + chunk - 1, fill.finished)
            conn.execute(
                FINISHED_SQL.format(table=table),
                {"origin": origin, "step": step, "first": first, "last": last},
            )
            done += last - first + 1
            rate = done / (time.perf_counter() - start)
            progress(f"scale: {done:,} of {fill.finished:,} finished jobs ({rate:,.0f} rows/s)")
    # Pending jobs created in the last minute (1,000 per millisecond), after every finished
    # one; the counter part of their ids starts at a value no earlier fill used.
    base = fill.finished + 1 + now_ms % 1_000_000 * 10_000_000
    for count, ready, run_in, spread in (
        (fill.scheduled, False, 3600.0, 30 * 24 * 3600.0 / max(fill.scheduled, 1)),
        (fill.due, True, -1.0, 0.0),
        (fill.staged_due, False, -1.0, 0.0),
    ):
        for first in range(base, base + count, chunk):
            last = min(first + chunk - 1, base + count - 1)
            conn.execute(
                PENDING_SQL.format(table=table),
                {"origin": now_ms - 60_000, "first": first, "last": last, "ready": ready,
                 "run_in": run_in, "spread": spread, "offset": base},
            )  # fmt: skip
            done += last - first + 1
        base += count
    return done


def _pcts(values: list[float]) -> dict[str, float | None]:
    if len(values) < 2:
        v = values[0] if values else None
        return {"p50_ms": v, "p95_ms": v, "p99_ms": v, "max_ms": v}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50_ms": cuts[49], "p95_ms": cuts[94], "p99_ms": cuts[98], "max_ms": max(values)}


def _free_bytes() -> int | None:
    for path in ("/var/lib/postgresql", "/"):
        try:
            return shutil.disk_usage(path).free
        except OSError:
            continue
    return None


def _df() -> str:
    try:
        done = subprocess.run(
            ["df", "-h", "/var/lib/postgresql"], capture_output=True, text=True, timeout=10
        )
        return done.stdout.strip() or done.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"df failed: {exc}"
