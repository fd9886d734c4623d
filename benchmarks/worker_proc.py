"""A worker process for the benchmark: `python benchmarks/worker_proc.py URL MODE [options]`.

drain: open the store, then time `app.run_worker(burst=True, concurrency=C)` itself (so the
       interpreter's start and imports are not counted) and print one JSON line.
idle:  print a JSON "ready" line, then run a normal worker until SIGTERM.

With --probe the store calls the worker makes are timed per method (calls, seconds); with
--profile DIR the drain also runs under cProfile: one profile for the event-loop thread and one
for the store thread (cProfile in Python 3.11 sees only the thread that enabled it).
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_app import make_app

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


def drain(url: str, concurrency: int, probe: bool, profile_dir: Path | None) -> dict[str, Any]:
    app, _ = make_app(url)
    app.migrate()  # open the store before the clock starts
    store_probe = StoreProbe(app.store, profile_dir is not None) if probe else None
    loop_profile = cProfile.Profile() if profile_dir is not None else None
    if loop_profile is not None:
        loop_profile.enable()
    start = time.perf_counter()
    app.run_worker(burst=True, concurrency=concurrency, handle_signals=False)
    seconds = time.perf_counter() - start
    if loop_profile is not None:
        loop_profile.disable()
    out: dict[str, Any] = {
        "seconds": seconds,
        "concurrency": concurrency,
        "by_status": app.stats().by_status,
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
