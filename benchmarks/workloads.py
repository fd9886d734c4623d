"""The workloads, written against underway's public API only, so they run unchanged on every
store. Each takes `fresh_url(label)`, which hands out a new, empty database, and returns a row
for the report (a plain dict, which is also what --json writes)."""

from __future__ import annotations

import contextlib
import cProfile
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import procs
from bench_app import make_app

import underway

FreshUrl = Callable[[str], str]
WORKER_SCRIPT = Path(__file__).with_name("worker_proc.py")
Row = dict[str, Any]


def percentiles(values_ms: list[float]) -> dict[str, float | None]:
    if not values_ms:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None}
    if len(values_ms) == 1:
        return {"p50_ms": values_ms[0], "p95_ms": values_ms[0], "p99_ms": values_ms[0]}
    cuts = statistics.quantiles(values_ms, n=100, method="inclusive")
    return {"p50_ms": cuts[49], "p95_ms": cuts[94], "p99_ms": cuts[98]}


def _rate(jobs: int, seconds: float) -> float | None:
    return jobs / seconds if seconds > 0 else None


# --- producers ---------------------------------------------------------------------------------


def enqueue_one(fresh_url: FreshUrl, n: int) -> Row:
    """N x noop.enqueue(): one transaction per job. Latency columns: one enqueue call."""
    app, noop = make_app(fresh_url("enqueue-one"))
    app.migrate()
    calls_ms: list[float] = []
    clock = time.perf_counter
    start = clock()
    for _ in range(n):
        t = clock()
        noop.enqueue()
        calls_ms.append((clock() - t) * 1000)
    seconds = clock() - start
    count = app.stats().by_status["pending"]
    app.close()
    return {
        "key": "enqueue_one",
        "workload": "enqueue one by one",
        "jobs": n,
        "seconds": seconds,
        "jobs_per_s": _rate(n, seconds),
        "latency_of": "one enqueue() call",
        "stored": count,
        **percentiles(calls_ms),
    }


def enqueue_bulk(fresh_url: FreshUrl, n: int, chunk: int | None) -> Row:
    """noop.enqueue_many([{}] * size) in chunks of `chunk` jobs (None: all N in one call)."""
    size = n if chunk is None else min(chunk, n)
    app, noop = make_app(fresh_url(f"enqueue-many-{chunk or 'whole'}"))
    app.migrate()
    batches: list[list[dict[str, Any]]] = [[{}] * min(size, n - i) for i in range(0, n, size)]
    start = time.perf_counter()
    for batch in batches:
        noop.enqueue_many(batch)
    seconds = time.perf_counter() - start
    count = app.stats().by_status["pending"]
    app.close()
    label = f"enqueue_many x {size:,}" if chunk is not None else f"enqueue_many all {n:,}"
    return {
        "key": "enqueue_chunks" if chunk is not None else "enqueue_whole",
        "workload": label,
        "jobs": n,
        "seconds": seconds,
        "jobs_per_s": _rate(n, seconds),
        "stored": count,
    }


def profile_bulk(fresh_url: FreshUrl, n: int, path: Path) -> Row:
    """enqueue_many of all N jobs in this process under cProfile; stats written to `path`."""
    app, noop = make_app(fresh_url("enqueue-many-profile"))
    app.migrate()
    calls: list[dict[str, Any]] = [{}] * n
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    noop.enqueue_many(calls)
    profile.disable()
    seconds = time.perf_counter() - start
    app.close()
    profile.dump_stats(path)
    return {"jobs": n, "seconds": seconds, "jobs_per_s": _rate(n, seconds)}


# --- one worker process draining a full queue -------------------------------------------------


def drain(
    fresh_url: FreshUrl,
    n: int,
    concurrency: int,
    *,
    processes: int = 1,
    probe: bool = False,
    profile_dir: Path | None = None,
    before_start: Callable[[str], None] | None = None,
) -> Row:
    """Pre-fill N jobs, then `processes` worker processes run them with `burst=True`, started
    together. Each worker times its own run, so interpreter start and imports are not counted;
    the drain lasts from the first worker's start to the last one's end."""
    label = f"drain-p{processes}-c{concurrency}{'-profile' if profile_dir else ''}"
    url = fresh_url(label)
    app, noop = make_app(url)
    app.migrate()
    for i in range(0, n, 10_000):
        noop.enqueue_many([{}] * min(10_000, n - i))
    app.close()
    if before_start is not None:
        before_start(url)

    cmd = [sys.executable, str(WORKER_SCRIPT), url, "drain", "--concurrency", str(concurrency)]
    if probe:
        cmd.append("--probe")
    if profile_dir is not None:
        cmd += ["--profile", str(profile_dir)]
    reports = procs.run_together([cmd] * processes, timeout=max(600, n / 10))
    seconds = procs.span(reports)
    first = min(reports, key=lambda r: r["started"])["ticks"][0]
    last = max(reports, key=lambda r: r["ended"])["ticks"][1]

    by_status = app.stats().by_status  # app reopens its store on first use
    first_start, last_end = _span(app)
    app.close()
    completed = by_status["completed"]
    span = (last_end - first_start).total_seconds() if first_start and last_end else None
    row: Row = {
        "key": "drain",
        "workload": f"drain, {processes} worker process{'es' if processes > 1 else ''}",
        "processes": processes,
        "concurrency": concurrency,
        "jobs": n,
        "completed": completed,
        "seconds": seconds,
        "jobs_per_s": _rate(completed, seconds),
        "per_process": [r["processed"] for r in reports],
        "worker_cpu_seconds": sum(r.get("cpu_seconds", 0.0) for r in reports),
        "server_cpu_seconds": (
            sum(r["server_cpu_seconds"] for r in reports)
            if all(r.get("server_cpu_seconds") is not None for r in reports)
            else None
        ),
        "machine_busy": procs.busy_share(first, last),
        "store_span_seconds": span,
        "store_span_jobs_per_s": _rate(completed, span) if span else None,
    }
    if completed != n:
        row["error"] = f"only {completed} of {n} jobs completed: {by_status}"
    for extra in ("store_calls", "profiles"):
        if extra in reports[0]:
            row[extra] = reports[0][extra]
    return row


def _span(app: underway.App) -> tuple[datetime | None, datetime | None]:
    """First started_at and last completed_at over all completed jobs."""
    first: datetime | None = None
    last: datetime | None = None
    cursor: str | None = None
    while True:
        page = app.list_jobs(status="completed", limit=10_000, cursor=cursor)
        for job in page.jobs:
            if job.started_at is not None and (first is None or job.started_at < first):
                first = job.started_at
            if job.completed_at is not None and (last is None or job.completed_at > last):
                last = job.completed_at
        if page.next_cursor is None:
            return first, last
        cursor = page.next_cursor


# --- pickup latency with idle workers ---------------------------------------------------------


def pickup(
    fresh_url: FreshUrl, jobs: int, pause_s: float, workers: int, concurrency: int = 10
) -> Row:
    """Idle worker processes (not burst) wait; this process enqueues one job every `pause_s`.
    Latency = started_at - created_at, both written by the store from the same clock."""
    url = fresh_url(f"pickup-{workers}w")
    app, noop = make_app(url)
    app.migrate()
    with _idle_workers(url, workers, concurrency) as worker_errors:
        # Warm up: every worker is in its loop and has run something before we measure.
        warm = [noop.enqueue().id for _ in range(workers * 3)]
        _wait_all(app, warm, 30, worker_errors)
        time.sleep(0.3)
        ids = []
        start = time.perf_counter()
        for _ in range(jobs):
            ids.append(noop.enqueue().id)
            time.sleep(pause_s)
        _wait_all(app, ids, 30, worker_errors)
        seconds = time.perf_counter() - start
    finished = [app.get_job(ident) for ident in ids]
    app.close()
    pickup_ms: list[float] = []
    total_ms: list[float] = []
    for job in finished:
        if job is None or job.started_at is None:
            continue
        pickup_ms.append((job.started_at - job.created_at).total_seconds() * 1000)
        if job.completed_at is not None:
            total_ms.append((job.completed_at - job.created_at).total_seconds() * 1000)
    to_completed = percentiles(total_ms)
    return {
        "key": "pickup",
        "workload": f"pickup latency, {workers} idle worker{'s' if workers > 1 else ''}",
        "workers": workers,
        "jobs": jobs,
        "pause_ms": pause_s * 1000,
        "seconds": seconds,
        "latency_of": "started_at - created_at",
        **percentiles(pickup_ms),
        "enqueue_to_completed_p50_ms": to_completed["p50_ms"],
        "enqueue_to_completed_p99_ms": to_completed["p99_ms"],
        "max_ms": max(pickup_ms) if pickup_ms else None,
    }


def _wait_all(
    app: underway.App, ids: list[uuid.UUID], timeout: float, errors: Callable[[], str]
) -> None:
    """Wait until every job finished, with one deadline for all of them."""
    deadline = time.monotonic() + timeout
    for ident in ids:
        try:
            app.wait(ident, timeout=max(deadline - time.monotonic(), 0.01), poll=0.01)
        except underway.JobTimeout:
            raise RuntimeError(
                f"jobs not finished {timeout:g} s after the last enqueue; worker stderr:\n"
                + errors()
            ) from None


@contextlib.contextmanager
def _idle_workers(url: str, count: int, concurrency: int) -> Iterator[Callable[[], str]]:
    workers: list[tuple[subprocess.Popen[str], IO[str]]] = []
    with contextlib.ExitStack() as files:
        try:
            for _ in range(count):
                cmd = [sys.executable, str(WORKER_SCRIPT), url, "idle"]
                cmd += ["--concurrency", str(concurrency)]
                # stderr to a file, not a pipe: it can never fill up and block the worker
                err: IO[str] = files.enter_context(tempfile.TemporaryFile("w+"))
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
                workers.append((proc, err))
            for proc, err in workers:
                _wait_ready(proc, err, timeout=60)

            def errors() -> str:
                text = []
                for _, err in workers:
                    err.seek(0)
                    text.append(err.read()[-3000:])
                return "\n".join(text)

            yield errors
        finally:
            for proc, _ in workers:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc, _ in workers:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                if proc.stdout is not None:
                    proc.stdout.close()


def _wait_ready(proc: subprocess.Popen[str], err: IO[str], timeout: float) -> None:
    assert proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()

    def read(stream: IO[str]) -> None:
        lines.put(stream.readline())

    threading.Thread(target=read, args=(proc.stdout,), daemon=True).start()
    try:
        line = lines.get(timeout=timeout)
    except queue.Empty:
        line = ""
    if not line.strip().startswith("{"):
        proc.kill()
        proc.wait()
        err.seek(0)
        raise RuntimeError(f"idle worker did not start (exit {proc.poll()}):\n{err.read()[-4000:]}")
