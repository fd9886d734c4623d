"""underway benchmarks: `./run bench [options]` (see benchmarks/README.md).

Measures enqueue (one by one and in bulk), draining a full queue with 1, 2 and 4 worker
processes at several concurrencies, pickup latency with idle workers, and the same work done
with raw SQL (the yardstick) in the same run, on SQLite and PostgreSQL. `--scale` adds claim
latency on a PostgreSQL table of ten million finished jobs; `--only dashboard` times the
dashboard's requests over HTTP on a store of a million finished jobs. Prints tables; `--json PATH`
writes the raw numbers. Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import pstats
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import dashboard
import live
import report
import workloads
from report import ms, progress, rate, ratio, say, table
from targets import STORES, Target, open_target

import underway

# What we aim for, and what peers reach on this kind of machine (a 2-core VM), per store.
# A target is (kind, value): "rate" jobs/s at least, "p50"/"p99" ms at most, "ratio" of the
# yardstick at least.
TARGETS: dict[str, dict[str, list[tuple[str, float]]]] = {
    "sqlite": {
        "enqueue_chunks": [("rate", 50_000.0)],
        "enqueue_whole": [("rate", 50_000.0)],
        "drain": [("rate", 5_000.0)],
        "pickup": [("p50", 10.0)],
    },
    "postgres": {
        "enqueue_chunks": [("rate", 100_000.0)],
        "enqueue_whole": [("rate", 100_000.0)],
        "drain": [("rate", 6_500.0), ("ratio", 0.70)],
        "pickup": [("p50", 2.0)],
        "scale": [("p99", 20.0)],
    },
}
PEERS: dict[str, dict[str, str]] = {
    "sqlite": {
        "drain": "Huey/SQLite 2,580/s",
        "pickup": "Huey/SQLite p50 40 ms",
        "claim_one": "raw loop 8,300/s",
    },
    "postgres": {
        "drain": "procrastinate 206/s, SAQ/PG 320/s, Dramatiq/Redis 3,254/s, Huey/Redis 2,934/s",
        "pickup": "procrastinate p50 4.8 ms, SAQ/PG 9.9 ms, Huey/Redis 0.5 ms",
        "claim_one": "raw SKIP LOCKED 1,800-3,600/s",
        "claim_batch": "raw SKIP LOCKED 10,000-17,600/s",
        "insert_chunks": "COPY 160,000 rows/s",
        "insert_whole": "COPY 160,000 rows/s",
    },
}
T = TypeVar("T")
WORKLOADS = (
    "enqueue", "bulk", "drain", "pickup", "live", "yardstick", "explain", "scale", "dashboard",
)  # fmt: skip
DEFAULT_ONLY = ("enqueue", "bulk", "drain", "pickup", "live", "yardstick", "explain")
#: the concurrency of the live drains (feed on, feed off, watched)
LIVE_CONCURRENCY = 100


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="./run bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument(
        "--store", choices=(*STORES, "both"), default="both", help="store(s) to benchmark"
    )
    p.add_argument(
        "--postgres-url",
        default=None,
        help="server for the PostgreSQL runs; each workload gets a fresh schema, dropped "
        "afterwards (default: $UNDERWAY_BENCH_POSTGRES_URL, else "
        "postgresql://postgres@127.0.0.1:5432/test)",
    )
    p.add_argument("--jobs", type=int, default=None, help="N jobs per workload (default 10000)")
    p.add_argument(
        "--concurrency",
        default=None,
        help="comma-separated worker concurrencies for the drain (default 50,100,200)",
    )
    p.add_argument(
        "--processes",
        default="1,2,4",
        help="comma-separated worker process counts for the drain, the claim yardstick and "
        "pickup (default 1,2,4)",
    )
    p.add_argument("--pickup-jobs", type=int, default=None, help="jobs per pickup run (300)")
    p.add_argument("--pickup-pause-ms", type=float, default=20.0, help="pause between them")
    p.add_argument(
        "--only",
        default=",".join(DEFAULT_ONLY),
        help=f"comma-separated subset of: {', '.join(WORKLOADS)}",
    )
    p.add_argument(
        "--scale",
        action="store_true",
        help="PostgreSQL: also claim latency with 10M finished + 1M scheduled jobs (minutes)",
    )
    p.add_argument("--scale-finished", type=int, default=10_000_000, help=argparse.SUPPRESS)
    p.add_argument("--scale-scheduled", type=int, default=1_000_000, help=argparse.SUPPRESS)
    p.add_argument("--scale-big-due", type=int, default=1_000_000, help=argparse.SUPPRESS)
    p.add_argument("--scale-budget", type=float, default=600.0, help=argparse.SUPPRESS)
    p.add_argument(
        "--dashboard-jobs",
        type=int,
        default=None,
        help="dashboard: finished jobs to fill the store with, plus 1%% pending "
        "(default 1,000,000; 10,000 with --quick)",
    )
    p.add_argument(
        "--dashboard-rounds",
        type=int,
        default=10,
        help="dashboard: timed requests per path, after one warm-up (default 10)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="also drain once with store calls timed and once under cProfile; print the top",
    )
    p.add_argument("--profile-concurrency", type=int, default=None, help="default: the best drain")
    p.add_argument("--top", type=int, default=25, help="profile entries to print per sort")
    p.add_argument("--quick", action="store_true", help="small N for a CI smoke run")
    p.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="rounds of the throughput workloads; the median run is reported (default 3, "
        "1 with --quick)",
    )
    p.add_argument("--json", type=Path, help="write the raw numbers to this file")
    p.add_argument("--dir", help="put the SQLite files here (default: a temp dir, removed)")
    args = p.parse_args(argv)
    args.jobs = args.jobs or (1_000 if args.quick else 10_000)
    args.pickup_jobs = args.pickup_jobs or (50 if args.quick else 300)
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.dashboard_jobs = args.dashboard_jobs or (10_000 if args.quick else 1_000_000)
    default_conc = "50,200" if args.quick else "50,100,200"
    try:
        args.concurrency = [int(c) for c in (args.concurrency or default_conc).split(",") if c]
        args.processes = tuple(int(c) for c in args.processes.split(",") if c)
    except ValueError:
        p.error("--concurrency and --processes take comma-separated integers")
    args.only = {w.strip() for w in args.only.split(",") if w.strip()}
    if args.scale:
        args.only.add("scale")
    unknown = args.only - set(WORKLOADS)
    if unknown:
        p.error(f"unknown workload(s) {sorted(unknown)}; choose from {', '.join(WORKLOADS)}")
    if args.dashboard_jobs < 100 or args.dashboard_rounds < 1:
        p.error("--dashboard-jobs must be >= 100 and --dashboard-rounds >= 1")
    if args.jobs < 1 or args.repeat < 1 or any(c < 1 for c in (*args.concurrency, *args.processes)):
        p.error("--jobs, --repeat, --concurrency and --processes must be >= 1")
    args.stores = list(STORES) if args.store == "both" else [args.store]
    return args


def machine_info(target: Target) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu": _cpu_model(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "underway": underway.__version__,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "time": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }
    info.update(target.describe())
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


class LoadSampler:
    """Samples the 1-minute load average every few seconds while a store's run goes on: other
    work on the machine shows up here first."""

    def __init__(self, every: float = 2.0) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self, every: float) -> None:
        while not self._stop.is_set():
            if hasattr(os, "getloadavg"):
                self.samples.append(os.getloadavg()[0])
            self._stop.wait(every)

    def summary(self) -> dict[str, float] | None:
        if not self.samples:
            return None
        return {
            "min": min(self.samples),
            "median": statistics.median(self.samples),
            "max": max(self.samples),
            "samples": len(self.samples),
        }


# --- running ------------------------------------------------------------------------------------

# Workloads run again because the server restarted under them (recorded in the report).
RESTARTS: list[str] = []


def again_on_restart(target: Target, what: str, fn: Callable[[], T]) -> T:
    """Run a workload; if it fails because the database server restarted meanwhile (another
    process on a shared server may restart it), wait for the server and run it again."""
    for attempt in range(1, 4):
        before = target.epoch()
        try:
            return fn()
        except Exception:
            after = target.wait_until_up()
            if before is None or after == before or attempt == 3:
                raise
            RESTARTS.append(what)
            progress(f"{what}: the server restarted meanwhile (not by this benchmark); again")
    raise AssertionError("unreachable")


def run_all(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    fresh = target.fresh_url
    results: list[dict[str, Any]] = []
    out: dict[str, Any] = {"results": results}

    k = args.repeat
    # Rounds: each round runs every throughput workload once, so a burst of load from
    # elsewhere on the machine spreads over all of them instead of hitting one.
    rounds = []
    out["round_load"] = []
    throughput = {"enqueue", "bulk", "drain", "live", "yardstick"} & args.only
    for i in range(1, k + 1 if throughput else 1):
        rounds.append(_throughput_round(args, target, f" [round {i}/{k}]" if k > 1 else ""))
        out["round_load"].append(os.getloadavg()[0] if hasattr(os, "getloadavg") else None)
    merged = [_median(list(runs)) for runs in zip(*rounds, strict=True)] if rounds else []
    results.extend(r for r in merged if not r.get("yardstick"))
    if "yardstick" in args.only:
        out["yardsticks"] = [r for r in merged if r.get("yardstick")]
    _mark_best_drains(results)
    if "pickup" in args.only:
        pause = args.pickup_pause_ms / 1000
        for workers in args.processes:
            progress(
                f"pickup latency: {workers} idle worker(s), {args.pickup_jobs} jobs "
                f"{args.pickup_pause_ms:g} ms apart"
            )
            results.append(
                again_on_restart(
                    target,
                    f"pickup {workers}",
                    lambda w=workers: workloads.pickup(fresh, args.pickup_jobs, pause, w),
                )
            )
    if "live" in args.only:
        jobs = 3 if args.quick else 10
        progress(f"update latency: {jobs} jobs x 10 reports, 150 ms apart, watched from here")
        results.append(
            again_on_restart(
                target, "update latency", lambda: live.update_latency(fresh, jobs, 10, 0.15)
            )
        )
        progress(f"cancel latency: {jobs * 2} running jobs cancelled one by one from here")
        with tempfile.TemporaryDirectory() as record_dir:
            results.append(
                again_on_restart(
                    target,
                    "cancel latency",
                    lambda: live.cancel_latency(fresh, jobs * 2, record_dir),
                )
            )
    if "explain" in args.only:
        progress("query plans of the worker's hot statements")
        out["explain"] = again_on_restart(target, "explain", target.explain)
    if "dashboard" in args.only:
        out["dashboard"] = again_on_restart(
            target,
            "dashboard",
            lambda: dashboard.run(fresh, target.name, args.dashboard_jobs, args.dashboard_rounds),
        )
    if args.profile:
        out["profile"] = run_profile(args, target, results)
    if "scale" in args.only and target.name == "postgres":
        import scale_postgres

        out["scale"] = again_on_restart(
            target,
            "scale",
            lambda: scale_postgres.run(
                fresh,
                finished=args.scale_finished,
                scheduled=args.scale_scheduled,
                big_due=args.scale_big_due,
                budget_s=args.scale_budget,
            ),
        )
    elif "scale" in args.only:
        progress(f"scale: PostgreSQL only, skipped on {target.name}")
    out["restarts"] = list(RESTARTS)
    RESTARTS.clear()
    return out


def _mark_best_drains(results: list[dict[str, Any]]) -> None:
    """Per process count, the concurrency with the most jobs/s gets `best`."""
    by_processes: dict[int, list[dict[str, Any]]] = {}
    for r in results:
        if r["key"] == "drain" and r.get("jobs_per_s"):
            by_processes.setdefault(r["processes"], []).append(r)
    for rows in by_processes.values():
        max(rows, key=lambda r: r["jobs_per_s"])["best"] = True


def _throughput_round(args: argparse.Namespace, target: Target, tag: str) -> list[dict[str, Any]]:
    n, fresh = args.jobs, target.fresh_url
    done: list[dict[str, Any]] = []

    def run(what: str, fn: Callable[[], T]) -> T:
        return again_on_restart(target, what + tag, fn)

    if "enqueue" in args.only:
        progress(f"enqueue one by one: {n:,} jobs{tag}")
        done.append(run("enqueue one by one", lambda: workloads.enqueue_one(fresh, n)))
    if "bulk" in args.only:
        progress(f"enqueue_many: {n:,} jobs in chunks of 1,000, then all at once{tag}")
        done.append(run("enqueue_many", lambda: workloads.enqueue_bulk(fresh, n, 1000)))
        done.append(run("enqueue_many", lambda: workloads.enqueue_bulk(fresh, n, None)))
    if "drain" in args.only:
        for p in args.processes:
            for c in args.concurrency:
                progress(f"drain: {n:,} jobs, {p} worker process(es), concurrency {c}{tag}")
                done.append(
                    run(
                        f"drain p{p} c{c}",
                        lambda p=p, c=c: workloads.drain(fresh, n, c, processes=p),
                    )
                )
    if "live" in args.only:
        c = LIVE_CONCURRENCY
        for variant in ("feed_on", "feed_off", "watched"):
            progress(f"drain, {variant.replace('_', ' ')}: {n:,} jobs, concurrency {c}{tag}")
            done.append(
                run(
                    f"drain {variant}",
                    lambda v=variant: live.drain_variant(fresh, target.name, n, c, v),
                )
            )
    if "yardstick" in args.only:
        progress(f"yardstick: raw {target.name} statements, {n:,} jobs each{tag}")
        rows = run(
            "yardstick",
            lambda: target.yardsticks(n, quick=args.quick, processes=args.processes),
        )
        done.extend({**y, "yardstick": True} for y in rows)
    return done


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median jobs/s (the lower middle one for an even count), with every
    run's jobs/s kept alongside."""
    if len(runs) == 1:
        return runs[0]
    ranked = sorted(runs, key=lambda r: r.get("jobs_per_s") or 0.0)
    row = dict(ranked[(len(ranked) - 1) // 2])
    row["runs_jobs_per_s"] = [r.get("jobs_per_s") for r in runs]
    spans = [r["store_span_jobs_per_s"] for r in runs if r.get("store_span_jobs_per_s")]
    if spans:
        row["runs_store_span_jobs_per_s"] = spans
    cpu = [_cpu_per_job_us(r) for r in runs]
    if all(c is not None for c in cpu):
        row["runs_cpu_per_job_us"] = cpu
    return row


def _cpu_per_job_us(run: dict[str, Any]) -> float | None:
    """CPU time the drain used per job: the worker's and the server processes serving it.
    Other load on the machine slows a drain's wall clock far more than it moves this."""
    worker, server, jobs = (run.get(k) for k in ("worker_cpu_seconds", "server_cpu_seconds",
                                                  "completed"))  # fmt: skip
    if worker is None or server is None or not jobs:
        return None
    return float((worker + server) / jobs * 1e6)


def run_profile(
    args: argparse.Namespace, target: Target, results: list[dict[str, Any]]
) -> dict[str, Any]:
    best = [r for r in results if r.get("best") and r.get("processes") == 1]
    c = args.profile_concurrency or (best[0]["concurrency"] if best else 100)
    progress(f"profile: drain {args.jobs:,} jobs at concurrency {c}, store calls timed")
    timed = workloads.drain(target.fresh_url, args.jobs, c, probe=True)
    progress(f"profile: drain {args.jobs:,} jobs at concurrency {c} under cProfile")
    with tempfile.TemporaryDirectory(prefix="underway-profile-") as tmp:
        profiled = workloads.drain(target.fresh_url, args.jobs, c, profile_dir=Path(tmp))
        paths = {name: profiled["profiles"][name] for name in ("loop", "store")}
        progress(f"profile: enqueue_many of {args.jobs:,} jobs under cProfile")
        paths["bulk"] = str(Path(tmp) / "bulk.prof")
        bulk = workloads.profile_bulk(target.fresh_url, args.jobs, Path(paths["bulk"]))
        texts = {
            name: {sort: _top(path, sort, args.top) for sort in ("cumulative", "tottime")}
            for name, path in paths.items()
        }
    return {
        "concurrency": c,
        "timed_drain": {k: timed.get(k) for k in ("seconds", "jobs_per_s", "store_calls")},
        "profiled_drain": {k: profiled.get(k) for k in ("seconds", "jobs_per_s")},
        "profiled_bulk": bulk,
        "top": texts,
    }


def _top(path: str, sort: str, count: int) -> str:
    buf = io.StringIO()
    stats = pstats.Stats(path, stream=buf)
    stats.strip_dirs().sort_stats(sort).print_stats(count)
    lines = buf.getvalue().splitlines()
    # Drop pstats' preamble up to the totals line; keep the totals and the table.
    for i, line in enumerate(lines):
        if "function calls" in line:
            lines = lines[i:]
            break
    return "\n".join(line.rstrip() for line in lines if line.strip())


# --- printing -------------------------------------------------------------------------------------


def print_report(args: argparse.Namespace, data: dict[str, Any]) -> None:
    store = data["config"]["store"]
    _print_header(args, data)
    yardsticks = {y["key"]: y for y in data.get("yardsticks", [])}
    results = data["results"]
    shown = [r for r in results if r["key"] != "drain" or r.get("best")]
    if shown:
        table(
            f"underway on {store}",
            [
                ("workload", "left"),
                ("jobs/s", "right"),
                ("p50 ms", "right"),
                ("p95 ms", "right"),
                ("p99 ms", "right"),
                ("runs (min-max)", "right"),
                ("yardstick jobs/s", "right"),
                ("ratio", "right"),
                ("target", "left"),
            ],
            [_result_row(store, r, yardsticks) for r in shown],
        )
        for note in _notes(store, results):
            say(note)
        peers = PEERS.get(store, {})
        for key, title in (("drain", "drain"), ("pickup", "pickup")):
            if key in peers and any(r["key"] == key for r in shown):
                say(f"peers on this kind of machine, {title}: {peers[key]}")
        say("")

    if yardsticks:
        peers = PEERS.get(store, {})
        table(
            f"yardstick: raw {store} statements",
            [
                ("yardstick", "left"),
                ("jobs/s", "right"),
                ("runs (min-max)", "right"),
                ("peer", "left"),
            ],
            [
                [y["workload"], rate(y["jobs_per_s"]), _spread(y), peers.get(_base_key(y), "")]
                for y in yardsticks.values()
            ],
        )
    if data.get("explain"):
        say("query plans (worker hot path):")
        for line in data["explain"]:
            say(line)
        say("")
    if "profile" in data:
        _print_profile(data["profile"])
    if "scale" in data:
        _print_scale(data["scale"])
    if "dashboard" in data:
        dashboard.print_report(data["dashboard"])
    if data.get("restarts"):
        say(
            "run again because the server restarted under them (another process restarted "
            f"it): {', '.join(data['restarts'])}"
        )
    _print_load(data)


def _print_header(args: argparse.Namespace, data: dict[str, Any]) -> None:
    m = data["machine"]
    say("")
    say(
        f"underway {m['underway']} benchmark on {m['store']}, N = {args.jobs:,} jobs per "
        f"workload"
        + (f", throughput the median of {args.repeat} rounds" if args.repeat > 1 else "")
    )
    say(
        f"machine: {m['cores']} cores ({m['cores_usable']} usable), {m['cpu']}; "
        f"{m['python']}; {m['platform']}"
    )
    if m.get("sqlite_version"):
        say(f"SQLite {m['sqlite_version']}, {m['journal']}; files on {m['filesystem']}")
    if m.get("postgres"):
        pg = m["postgres"]
        say(
            f"PostgreSQL {pg['server_version']} at {m['server']} (data on {m['filesystem']}); "
            f"synchronous_commit={pg['synchronous_commit']}, fsync={pg['fsync']}, "
            f"shared_buffers={pg['shared_buffers']}, autovacuum={pg['autovacuum']}; "
            f"psycopg {m['psycopg']}"
        )
    load = m.get("load_average")
    if load:
        say(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    say("")


def _print_load(data: dict[str, Any]) -> None:
    load = data["machine"].get("load_average_end")
    sampled = data["machine"].get("load_sampled")
    rounds = [f"{v:.2f}" for v in data.get("round_load", []) if v is not None]
    parts = []
    if load:
        parts.append(f"at end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if sampled:
        parts.append(
            f"1-min load during the run (every 2 s): min {sampled['min']:.2f}, median "
            f"{sampled['median']:.2f}, max {sampled['max']:.2f}"
        )
    if rounds:
        parts.append(f"after each round: {', '.join(rounds)}")
    if parts:
        say("load average " + "; ".join(parts))
    say("")


def _base_key(r: dict[str, Any]) -> str:
    """A yardstick's key without its process count: claim_batch_p2 -> claim_batch."""
    key: str = r["key"]
    return key.rsplit("_p", 1)[0] if "processes" in r else key


def _yardstick_of(
    r: dict[str, Any], yardsticks: dict[str, dict[str, Any]]
) -> dict[str, Any] | None:
    """The yardstick an underway row is held against."""
    key = r["key"]
    if key == "drain":
        # the batched raw claim loop over as many processes (SQLite: its one-process loop)
        return yardsticks.get(f"claim_batch_p{r['processes']}") or yardsticks.get("claim_batch")
    mapping = {"enqueue_one": "insert_one", "enqueue_chunks": "insert_chunks",
               "enqueue_whole": "insert_whole"}  # fmt: skip
    return yardsticks.get(mapping.get(key, ""))


def _result_row(store: str, r: dict[str, Any], yardsticks: dict[str, dict[str, Any]]) -> list[str]:
    key = r["key"]
    name = r["workload"]
    if key == "drain":
        name += f", best concurrency {r['concurrency']}"
    if r.get("error"):
        name += "  (!) " + r["error"]
    yard = _yardstick_of(r, yardsticks)
    yard_rate = yard["jobs_per_s"] if yard else None
    mine = r.get("jobs_per_s")
    ratio_value = mine / yard_rate if mine and yard_rate else None
    jobs_per_s = "-" if key == "pickup" else rate(mine)
    return [
        name,
        jobs_per_s,
        ms(r.get("p50_ms")),
        ms(r.get("p95_ms")),
        ms(r.get("p99_ms")),
        _spread(r),
        rate(yard_rate),
        ratio(ratio_value),
        _target(store, key, r.get("jobs_per_s"), r, ratio_value),
    ]


def _spread(r: dict[str, Any]) -> str:
    runs = [v for v in r.get("runs_jobs_per_s") or [] if v]
    if len(runs) < 2:
        return ""
    return f"{min(runs):,.0f}-{max(runs):,.0f}"


def _target(
    store: str, key: str, jobs_per_s: float | None, pcts: dict[str, Any], ratio_value: float | None
) -> str:
    parts = []
    for kind, value in TARGETS.get(store, {}).get(key, []):
        if kind in ("p50", "p99"):
            got = pcts.get(f"{kind}_ms")
            met = got is not None and (got <= value if kind == "p50" else got < value)
            sign = "<=" if kind == "p50" else "<"
            parts.append(f"{kind} {sign} {value:g} ms {'met' if met else 'MISSED'}")
        elif kind == "ratio":
            met = ratio_value is not None and ratio_value >= value
            parts.append(f">= {value:.0%} of yardstick {'met' if met else 'MISSED'}")
        else:
            met = jobs_per_s is not None and jobs_per_s >= value
            parts.append(f">= {value:,.0f}/s {'met' if met else 'MISSED'}")
    return "; ".join(parts)


def _live_notes(results: list[dict[str, Any]]) -> list[str]:
    """What the change feed and its watchers cost the drain, from the same rounds."""
    by_key = {r["key"]: r.get("jobs_per_s") for r in results}
    on, off, watched = (by_key.get(f"drain_{v}") for v in ("feed_on", "feed_off", "watched"))
    if not (on and off):
        return []
    notes = [f"change feed: the drain runs at {on / off:.0%} of its rate with the feed off "
             f"(cost {1 - on / off:+.1%}; budget 10%)"]  # fmt: skip
    # A worker's own timing includes its stop (up to one 0.25 s wait slice to join), which
    # quantizes a 2 s drain; the store's first start to last finish is the drain alone.
    spans = {r["key"]: r.get("runs_store_span_jobs_per_s") for r in results}
    span_on, span_off = spans.get("drain_feed_on"), spans.get("drain_feed_off")
    if span_on and span_off:
        m_on, m_off = statistics.median(span_on), statistics.median(span_off)
        notes.append(f"  over the drain alone (first start to last finish in the store, median "
                     f"of {len(span_on)} rounds): {m_on:,.0f} vs {m_off:,.0f} jobs/s, cost "
                     f"{1 - m_on / m_off:+.1%}")  # fmt: skip
        paired = [1 - a / b for a, b in zip(span_on, span_off, strict=False)]
        notes.append(f"  round by round (feed on, then off, in each round): median cost "
                     f"{statistics.median(paired):+.1%}, from {min(paired):+.1%} to "
                     f"{max(paired):+.1%}")  # fmt: skip
    cpus = {r["key"]: r.get("runs_cpu_per_job_us") for r in results}
    cpu_on, cpu_off = cpus.get("drain_feed_on"), cpus.get("drain_feed_off")
    if cpu_on and cpu_off:
        c_on, c_off = statistics.median(cpu_on), statistics.median(cpu_off)
        notes.append(f"  CPU per job (the worker and its server processes, median of rounds): "
                     f"{c_on:.0f} vs {c_off:.0f} µs, cost {c_on / c_off - 1:+.1%}")  # fmt: skip
    if watched:
        notes.append(f"  with 2 watchers following every change: {watched / on:.0%} of the drain "
                     "with none (the watchers share the machine's 2 cores)")  # fmt: skip
    return notes


def _notes(store: str, results: list[dict[str, Any]]) -> list[str]:
    notes = _live_notes(results)
    if any(r["key"] == "enqueue_one" for r in results):
        notes.append("enqueue one by one: latency columns are one enqueue() call.")
    drains = [r for r in results if r["key"] == "drain"]
    if drains:
        held = (
            "the raw SKIP LOCKED loop at 10 jobs per transaction over as many processes"
            if store == "postgres"
            else "the raw claim-100/complete-100 loop"
        )
        notes.append(
            "drain: jobs/s from the first worker's start to the last one's end (imports and "
            f"store open excluded; workers started together); ratio against {held}."
        )
        by_p: dict[int, list[str]] = {}
        for r in drains:
            mark = "*" if r.get("best") else ""
            span = rate(r.get("store_span_jobs_per_s"))
            by_p.setdefault(r["processes"], []).append(
                f"c={r['concurrency']} {rate(r.get('jobs_per_s'))}{mark} ({span})"
            )
        for p, cells in sorted(by_p.items()):
            notes.append(f"  drain with {p} process(es), by concurrency: " + ", ".join(cells))
        notes.append(
            "  (in brackets: first started_at to last completed_at in the store; * = best)"
        )
        for r in drains:
            if r.get("best") and r.get("worker_cpu_seconds"):
                notes.append(_cpu_note(r))
    for r in results:
        if r["key"] == "pickup":
            notes.append(
                f"{r['workload']}: latency = started_at - created_at over {r['jobs']} jobs "
                f"{r['pause_ms']:g} ms apart (max {ms(r.get('max_ms'))} ms; enqueue to "
                f"completed p50 {ms(r.get('enqueue_to_completed_p50_ms'))} ms, "
                f"p99 {ms(r.get('enqueue_to_completed_p99_ms'))} ms)."
            )
    return notes


def _cpu_note(r: dict[str, Any]) -> str:
    """Where the CPU went during a drain: the workers, the server processes serving them, and
    how busy the whole machine was (anyone's work, other processes' too)."""
    per_job = 1e6 / r["jobs"]
    worker = r["worker_cpu_seconds"]
    text = (
        f"  CPU in the best drain with {r['processes']} process(es) ({r['seconds']:.2f} s): "
        f"workers {worker:.2f} s ({worker * per_job:,.0f} us/job)"
    )
    server = r.get("server_cpu_seconds")
    if server is not None:
        text += f", their server processes {server:.2f} s ({server * per_job:,.0f} us/job)"
    busy = r.get("machine_busy")
    if busy is not None:
        cores = os.cpu_count() or 1
        text += (
            f"; all {cores} cores {busy:.0%} busy, so {busy * cores * r['seconds']:.2f} CPU-s "
            "in all"
        )
    return text


def _print_profile(prof: dict[str, Any]) -> None:
    c = prof["concurrency"]
    timed = prof["timed_drain"]
    seconds = timed["seconds"]
    say(
        f"profile of a drain (1 process) at concurrency {c}: {rate(timed['jobs_per_s'])} jobs/s "
        f"with store calls timed, {rate(prof['profiled_drain']['jobs_per_s'])} jobs/s under "
        "cProfile"
    )
    calls = timed.get("store_calls") or {}
    total = sum(v["seconds"] for k, v in calls.items() if k != "wait_for_change")
    rows = [
        [
            name,
            f"{v['calls']:,}",
            f"{v['seconds']:.3f}",
            f"{v['seconds'] / v['calls'] * 1000:.3f}",
            f"{v['seconds'] / seconds * 100:.0f}%",
        ]
        for name, v in sorted(calls.items(), key=lambda kv: -kv[1]["seconds"])
    ]
    rows.append(
        ["store thread calls (not the wait)", "", f"{total:.3f}", "", f"{total / seconds:.0%}"]
    )
    table(
        f"store calls in a {seconds:.3f} s drain",
        [
            ("store call", "left"),
            ("calls", "right"),
            ("seconds", "right"),
            ("ms/call", "right"),
            ("of wall", "right"),
        ],
        rows,
    )
    titles = {
        "loop": "drain, event-loop thread (dispatch, tasks, outcome bookkeeping)",
        "store": "drain, store thread (the SQL calls, run_in_executor)",
        "bulk": f"enqueue_many of {prof['profiled_bulk']['jobs']:,} jobs, in process",
    }
    for name, by_sort in prof["top"].items():
        for sort, text in by_sort.items():
            say(f"--- cProfile, {titles[name]}, top by {sort} ---")
            say(text)
            say("")


def _print_scale(scale: dict[str, Any]) -> None:
    say("scale: claim latency on a big table (store.claim of 10 jobs, then store.finish)")
    say(scale.get("disk", ""))
    if scale.get("skipped"):
        say(f"skipped: {scale['skipped']}")
        return
    rows = []
    for case in scale["cases"]:
        c, f = case["claim"], case["finish"]
        size = case.get("table_bytes")
        big = "finished" in case["case"]
        rows.append(
            [
                case["case"],
                f"{case['claims']:,}",
                ms(c["p50_ms"]),
                ms(c["p95_ms"]),
                ms(c["p99_ms"]),
                ms(c["max_ms"]),
                ms(f["p50_ms"]),
                ms(f["p99_ms"]),
                f"{size / 1e9:.2f} GB" if size else "-",
                f"{case['fill_seconds']:.0f} s" if case.get("fill_rows") else "-",
                _target("postgres", "scale", None, c, None) if big else "",
            ]
        )
    table(
        "scale",
        [
            ("table", "left"),
            ("claims", "right"),
            ("claim p50", "right"),
            ("p95", "right"),
            ("p99", "right"),
            ("max", "right"),
            ("finish p50", "right"),
            ("p99", "right"),
            ("table size", "right"),
            ("fill", "right"),
            ("target (claim)", "left"),
        ],
        rows,
    )
    if scale.get("big_due_skipped"):
        say(scale["big_due_skipped"])
    say(
        "EXPLAIN (ANALYZE, BUFFERS) of the claim statement and of next_due (what an idle "
        "worker asks), after 3 warm-up claims:"
    )
    for line in scale["explain"]:
        say(line)
    say(f"scale run took {scale.get('seconds', 0):.0f} s; its schemas are dropped")
    say("")


# --- main -------------------------------------------------------------------------------------


def run_store(args: argparse.Namespace, store: str) -> dict[str, Any]:
    target = open_target(store, args.dir, args.postgres_url)
    try:
        data: dict[str, Any] = {"machine": machine_info(target)}
        data["config"] = {
            "store": store,
            "jobs": args.jobs,
            "concurrency": args.concurrency,
            "processes": list(args.processes),
            "pickup_jobs": args.pickup_jobs,
            "pickup_pause_ms": args.pickup_pause_ms,
            "quick": args.quick,
            "repeat": args.repeat,
            "targets": TARGETS.get(store, {}),
            "peers": PEERS.get(store, {}),
        }
        with LoadSampler() as sampler:
            data.update(run_all(args, target))
        data["machine"]["load_sampled"] = sampler.summary()
        if hasattr(os, "getloadavg"):
            data["machine"]["load_average_end"] = os.getloadavg()
    finally:
        target.cleanup()
    return data


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    runs: dict[str, Any] = {}
    for store in args.stores:
        progress(f"=== {store} ===")
        runs[store] = run_store(args, store)
        print_report(args, runs[store])
        if args.json:  # after each store, so a later failure keeps what was measured
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"stores": runs}, indent=2, default=str) + "\n")
            report.progress(f"raw numbers written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
