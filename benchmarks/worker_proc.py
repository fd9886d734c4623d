"""A worker process for the benchmark: `python benchmarks/worker_proc.py URL MODE [options]`.

drain: open the store, say it is ready and wait for the benchmark's go (so several worker
       processes start together, see procs.py), then time a burst worker's run itself (the
       interpreter's start and imports are not counted) and print one JSON line.
idle:  print a JSON "ready" line, then run a normal worker until SIGTERM.

With --probe the store calls the worker makes are timed per method (calls, seconds); with
--profile DIR the drain also runs under cProfile: one profile for the event-loop thread and one
for the store thread (cProfile in Python 3.11 sees only the thread that enabled it).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_app import add_reporter, add_waiter, make_app
from procs import cpu_ticks, wait_for_go

import underway

# The store methods a worker calls from its one store thread (those the store has are wrapped;
# a waiting call such as wait_for_change counts its sleep too).
WORKER_STORE_CALLS = (
    "claim",
    "finish",
    "next_due",
    "changed",
    "wait_for_change",
    "rescue",
    "heartbeat",
    "report",
)
WAITING_CALLS = frozenset({"wait_for_change"})


class StoreProbe:
    """Wraps the worker's store calls to time them and, optionally, profile the store thread."""

    def __init__(self, store: Any, profile: bool) -> None:
        names = [name for name in WORKER_STORE_CALLS if callable(getattr(store, name, None))]
        self.calls: dict[str, list[float]] = {name: [0, 0.0] for name in names}
        self.profile = cProfile.Profile() if profile else None
        for name in names:
            setattr(store, name, self._wrap(name, getattr(store, name)))

    def _wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        counter = self.calls[name]
        # A change wait runs on a thread of its own and mostly sleeps: time it, do not profile
        # it (one cProfile object must not be enabled from two threads at once).
        profile = None if name in WAITING_CALLS else self.profile

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if profile is not None:
                profile.enable()
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                counter[0] += 1
                counter[1] += time.perf_counter() - start
                if profile is not None:
                    profile.disable()

        return timed


class ServerCpu:
    """CPU time of the PostgreSQL server processes that serve this worker (the server runs on
    this machine): its connections carry an application_name of their own, and each server
    process's CPU time is in /proc/<pid>/stat."""

    def __init__(self, url: str) -> None:
        from yardstick_postgres import split_url

        self.name = f"underway-bench-{os.getpid()}"
        self.conninfo = split_url(url)[0]  # for our own look-ups, without the name
        sep = "&" if "?" in url else "?"
        self.url = f"{url}{sep}application_name={self.name}"
        self._conn: Any = None
        self._start: dict[int, float] = {}

    def _read(self) -> dict[int, float]:
        import psycopg

        if self._conn is None:
            self._conn = psycopg.connect(self.conninfo, autocommit=True)
        rows = self._conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (self.name,)
        ).fetchall()
        out = {}
        tick = os.sysconf("SC_CLK_TCK")
        for (pid,) in rows:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[pid] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        return out

    def start(self) -> None:
        self._start = self._read()

    def seconds(self) -> float:
        end = self._read()
        self._conn.close()
        return sum(v - self._start.get(pid, 0.0) for pid, v in end.items())


def drain(url: str, concurrency: int, probe: bool, profile_dir: Path | None) -> dict[str, Any]:
    server = ServerCpu(url) if url.startswith(("postgres://", "postgresql://")) else None
    app, _ = make_app(server.url if server else url)
    app.migrate()  # open the store before the clock starts
    store_probe = StoreProbe(app.store, profile_dir is not None) if probe else None
    loop_profile = cProfile.Profile() if profile_dir is not None else None
    worker = underway.Worker(app, concurrency=concurrency, burst=True)
    wait_for_go()
    if server is not None:
        server.start()
    if loop_profile is not None:
        loop_profile.enable()
    ticks_start = cpu_ticks()
    started = time.time()
    start = time.perf_counter()
    cpu = time.process_time()
    asyncio.run(worker.run(handle_signals=False))
    cpu = time.process_time() - cpu
    seconds = time.perf_counter() - start
    ended = time.time()
    ticks_end = cpu_ticks()
    server_cpu = server.seconds() if server is not None else None
    if loop_profile is not None:
        loop_profile.disable()
    out: dict[str, Any] = {
        "seconds": seconds,
        "started": started,
        "ended": ended,
        "processed": worker.processed,
        "cpu_seconds": cpu,  # this process, all its threads
        "ticks": [ticks_start, ticks_end],  # the machine's, for how busy it was
        "server_cpu_seconds": server_cpu,  # the server processes serving this worker
        "concurrency": concurrency,
    }
    if store_probe is not None:
        out["store_calls"] = {
            k: {"calls": int(v[0]), "seconds": v[1]} for k, v in store_probe.calls.items() if v[0]
        }
    if profile_dir is not None:
        assert loop_profile is not None and store_probe is not None
        assert store_probe.profile is not None
        loop_profile.dump_stats(profile_dir / "loop.prof")
        store_probe.profile.dump_stats(profile_dir / "store.prof")
        out["profiles"] = {
            "loop": str(profile_dir / "loop.prof"),
            "store": str(profile_dir / "store.prof"),
        }
    app.close()
    return out


def idle(url: str, concurrency: int) -> None:
    app, _ = make_app(url)
    add_reporter(app)
    add_waiter(app)
    app.migrate()
    print(json.dumps({"ready": True}), flush=True)
    app.run_worker(concurrency=concurrency)  # until SIGTERM, which it handles gracefully
    app.close()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("mode", choices=("drain", "idle"))
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--probe", action="store_true", help="time each store call")
    parser.add_argument("--profile", type=Path, help="write cProfile stats into this directory")
    args = parser.parse_args(argv)
    if args.mode == "idle":
        idle(args.url, args.concurrency)
        return
    result = drain(args.url, args.concurrency, args.probe or bool(args.profile), args.profile)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
