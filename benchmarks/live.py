"""Live updates: how long a worker's report takes to reach a watcher in another process, and
what the change feed and its watchers cost the drain.

- `update_latency`: idle worker processes run reporting jobs; this process watches the feed.
  Latency = the watcher's wall clock when the change arrives minus the worker's wall clock
  when the task reported (the same machine, so the same clock).
- `drain_variant`: the drain of workloads.drain, with the feed's triggers dropped (what the
  feed costs: the drain without it is the yardstick), or with watchers following every
  change in this process meanwhile.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
import workloads
from bench_app import add_reporter, add_waiter, make_app
from psycopg import sql
from workloads import FreshUrl, Row, percentiles

import underway

#: the triggers of migration 0003: the change feed and the attempt history
FEED_TRIGGERS = {
    "sqlite": ["underway_feed_inserted", "underway_feed_updated",
               "underway_attempt_ended", "underway_history_deleted"],
    "postgres": ["underway_feed_inserted", "underway_feed_updated", "underway_feed_deleted"],
}  # fmt: skip


def update_latency(fresh_url: FreshUrl, jobs: int, steps: int, pause_s: float) -> Row:
    """`jobs` jobs one after another, each reporting `steps` times `pause_s` apart, run by one
    idle worker process; this process watches and times every report."""
    url = fresh_url("latency")
    app, _ = make_app(url)
    reporter = add_reporter(app)
    app.migrate()
    latencies: list[float] = []
    with workloads._idle_workers(url, 1, 10) as worker_errors:
        head = app.store.change_head()
        reporter.enqueue(1, 0.0)  # warm up: the worker has run something before we measure
        ids = {reporter.enqueue(steps, pause_s).id for _ in range(jobs)}
        finished: set[Any] = set()
        for change in app.watch(since=head, timeout=30):
            if change.job.id not in ids:
                continue
            if change.kind == underway.ChangeKind.REPORTED and change.job.status_message:
                latencies.append((time.time() - float(change.job.status_message)) * 1000)
            if change.job.finished:
                finished.add(change.job.id)
                if finished == ids:
                    break
        else:
            raise RuntimeError("the watcher saw no change for 30 s; worker:\n" + worker_errors())
    app.close()
    return {
        "key": "update_latency",
        "workload": "update latency, report -> watcher in another process",
        "jobs": jobs,
        "reports": len(latencies),
        "expected_reports": jobs * steps,
        "latency_of": "watcher's time.time() on arrival - task's time.time() at report",
        **percentiles(latencies),
        "max_ms": max(latencies) if latencies else None,
    }


def cancel_latency(fresh_url: FreshUrl, jobs: int, record_dir: str) -> Row:
    """`jobs` running jobs, cancelled one at a time from this process; latency = the task's
    wall clock when `ctx.wait_cancelled` returned minus ours just before `app.cancel`."""
    url = fresh_url("cancel")
    app, _ = make_app(url)
    waiter = add_waiter(app)
    app.migrate()
    record = f"{record_dir}/cancels.log"
    sent: dict[str, float] = {}
    with workloads._idle_workers(url, 1, jobs) as worker_errors:
        running = [waiter.enqueue(record) for _ in range(jobs)]
        deadline = time.monotonic() + 30
        while any(app.get_job(j.id).status != underway.Status.RUNNING for j in running):
            if time.monotonic() > deadline:
                raise RuntimeError("the jobs did not start; worker:\n" + worker_errors())
            time.sleep(0.05)
        for job in running:
            time.sleep(0.05)
            sent[str(job.id)] = time.time()
            app.cancel(job.id)
        for job in running:
            app.wait(job.id, timeout=30)
    app.close()
    seen = {}
    with open(record) as lines:
        for line in lines:
            job_id, at = line.split()
            seen[job_id] = float(at)
    latencies = [(seen[i] - sent[i]) * 1000 for i in sent if i in seen]
    return {
        "key": "cancel_latency",
        "workload": "cancel latency, app.cancel -> the running task sees it (other process)",
        "jobs": jobs,
        "seen": len(latencies),
        **percentiles(latencies),
        "max_ms": max(latencies) if latencies else None,
    }


def drain_variant(
    fresh_url: FreshUrl, store: str, n: int, concurrency: int, variant: str, watchers: int = 2
) -> Row:
    """workloads.drain with `variant` "feed_on" (as it ships), "feed_off" (the feed's
    triggers dropped) or "watched" (`watchers` threads here follow every change)."""
    label = f"drain-{variant}"

    def fresh(_label: str) -> str:
        url = fresh_url(label)
        if variant == "feed_off":
            _drop_feed_triggers(url, store)
        return url

    with _watching(variant == "watched", watchers, n) as seen:
        row = workloads.drain(fresh, n, concurrency, processes=1, before_start=seen.start)
    row["key"] = f"drain_{variant}"
    row["workload"] = {
        "feed_on": "drain, 1 process, change feed on (as it ships)",
        "feed_off": "drain, 1 process, change feed off (yardstick of the feed)",
        "watched": f"drain, 1 process, {watchers} watchers following every change",
    }[variant]
    if variant == "watched":
        row["changes_seen"] = seen.counts
    return row


def _drop_feed_triggers(url: str, store: str) -> None:
    drop_from_jobs(url, store, FEED_TRIGGERS[store])


def drop_from_jobs(
    url: str, store: str, triggers: Sequence[str], indexes: Sequence[str] = ()
) -> None:
    """Migrate a fresh store at `url`, then drop these triggers and indexes of its job table:
    the yardstick of what they cost."""
    app, _ = make_app(url)
    app.migrate()
    app.close()
    if store == "sqlite":
        import sqlite3

        path = url.removeprefix("sqlite:///")
        with contextlib.closing(sqlite3.connect(path)) as conn:
            for name in triggers:
                conn.execute(f"DROP TRIGGER {name}")
            for name in indexes:
                conn.execute(f"DROP INDEX {name}")
            conn.commit()
        return
    conninfo, _, schema = url.partition("?schema=")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for name in triggers:
            conn.execute(
                sql.SQL("DROP TRIGGER {} ON {}.underway_jobs").format(
                    sql.Identifier(name), sql.Identifier(schema)
                )
            )
        for name in indexes:
            conn.execute(
                sql.SQL("DROP INDEX {}.{}").format(sql.Identifier(schema), sql.Identifier(name))
            )


class _Seen:
    def __init__(self) -> None:
        self.counts: list[int] = []
        self.start: Any = None


@contextlib.contextmanager
def _watching(on: bool, watchers: int, n: int) -> Iterator[_Seen]:
    """Watcher threads that follow every change from the drain's start until `n` jobs
    completed (or 5 s passed without a change)."""
    seen = _Seen()
    if not on:
        yield seen
        return
    threads: list[threading.Thread] = []

    def start(url: str) -> None:
        app, _ = make_app(url)
        head = app.store.change_head()
        seen.counts = [0] * watchers

        def follow(i: int) -> None:
            done = 0
            for change in app.watch(since=head, timeout=5):
                seen.counts[i] += 1
                done += change.kind == underway.ChangeKind.COMPLETED
                if done >= n:
                    break

        for i in range(watchers):
            thread = threading.Thread(target=follow, args=(i,), daemon=True)
            thread.start()
            threads.append(thread)

    seen.start = start
    try:
        yield seen
    finally:
        for thread in threads:
            thread.join(timeout=60)
