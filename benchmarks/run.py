"""underway benchmarks: `./run bench [options]` (see benchmarks/README.md).

Measures enqueue (one by one and in bulk), draining a full queue with one worker process at
several concurrencies, pickup latency with idle workers, and the same work done with raw SQL
(the yardstick) in the same run. Prints a table; `--json PATH` writes the raw numbers.
Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import report
import workloads
from report import ms, progress, rate, ratio, say, table
from targets import STORES, Target, open_target

import underway

# What we aim for, and what peers reach on this kind of machine (a 2-core VM).
TARGETS = {
    "enqueue_chunks": ("bulk", 50_000.0),
    "enqueue_whole": ("bulk", 50_000.0),
    "drain": ("drain", 5_000.0),
    "pickup": ("p50", 10.0),
}
PEERS = {
    "drain": "Huey/SQLite 2,580/s",
    "pickup": "Huey/SQLite p50 40 ms",
    "claim_one": "raw loop 8,300/s",
}
# Which yardstick each underway workload is held against.
YARDSTICK_OF = {
    "enqueue_one": "insert_one",
    "enqueue_chunks": "insert_chunks",
    "enqueue_whole": "insert_whole",
    "drain": "claim_batch",
}
WORKLOADS = ("enqueue", "bulk", "drain", "pickup", "yardstick", "explain")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="./run bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--store", choices=STORES, default="sqlite", help="store to benchmark")
    p.add_argument("--jobs", type=int, default=None, help="N jobs per workload (default 10000)")
    p.add_argument(
        "--concurrency",
        default=None,
        help="comma-separated worker concurrencies for the drain (default 10,50,100,200)",
    )
    p.add_argument("--pickup-jobs", type=int, default=None, help="jobs per pickup run (300)")
    p.add_argument("--pickup-pause-ms", type=float, default=20.0, help="pause between them")
    p.add_argument(
        "--only",
        default=",".join(WORKLOADS),
        help=f"comma-separated subset of: {', '.join(WORKLOADS)}",
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
    p.add_argument("--dir", help="put the database files here (default: a temp dir, removed)")
    args = p.parse_args(argv)
    args.jobs = args.jobs or (1_000 if args.quick else 10_000)
    args.pickup_jobs = args.pickup_jobs or (50 if args.quick else 300)
    args.repeat = args.repeat or (1 if args.quick else 3)
    default_conc = "10,100" if args.quick else "10,50,100,200"
    args.concurrency = [int(c) for c in (args.concurrency or default_conc).split(",") if c]
    args.only = {w.strip() for w in args.only.split(",") if w.strip()}
    unknown = args.only - set(WORKLOADS)
    if unknown:
        p.error(f"unknown workload(s) {sorted(unknown)}; choose from {', '.join(WORKLOADS)}")
    if args.jobs < 1 or args.repeat < 1 or any(c < 1 for c in args.concurrency):
        p.error("--jobs, --repeat and --concurrency must be >= 1")
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


# --- running ------------------------------------------------------------------------------------


def run_all(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    fresh = target.fresh_url
    results: list[dict[str, Any]] = []
    out: dict[str, Any] = {"results": results}

    k = args.repeat
    # Rounds: each round runs every throughput workload once, so a burst of load from
    # elsewhere on the machine spreads over all of them instead of hitting one.
    rounds = [
        _throughput_round(args, target, f" [round {i}/{k}]" if k > 1 else "")
        for i in range(1, k + 1)
    ]
    merged = [_median(list(runs)) for runs in zip(*rounds, strict=True)]
    results.extend(r for r in merged if not r.get("yardstick"))
    if "yardstick" in args.only:
        out["yardsticks"] = [r for r in merged if r.get("yardstick")]
    drains = [r for r in results if r["key"] == "drain" and r.get("jobs_per_s")]
    if drains:
        max(drains, key=lambda r: r["jobs_per_s"])["best"] = True
    if "pickup" in args.only:
        for workers in (1, 2):
            progress(
                f"pickup latency: {workers} idle worker(s), {args.pickup_jobs} jobs "
                f"{args.pickup_pause_ms:g} ms apart"
            )
            results.append(
                workloads.pickup(fresh, args.pickup_jobs, args.pickup_pause_ms / 1000, workers)
            )
    if "explain" in args.only:
        progress("query plans of the worker's hot statements")
        out["explain"] = target.explain()
    if args.profile:
        out["profile"] = run_profile(args, target, results)
    return out


def _throughput_round(args: argparse.Namespace, target: Target, tag: str) -> list[dict[str, Any]]:
    n, fresh = args.jobs, target.fresh_url
    done: list[dict[str, Any]] = []
    if "enqueue" in args.only:
        progress(f"enqueue one by one: {n:,} jobs{tag}")
        done.append(workloads.enqueue_one(fresh, n))
    if "bulk" in args.only:
        progress(f"enqueue_many: {n:,} jobs in chunks of 1,000, then all at once{tag}")
        done.append(workloads.enqueue_bulk(fresh, n, 1000))
        done.append(workloads.enqueue_bulk(fresh, n, None))
    if "drain" in args.only:
        for c in args.concurrency:
            progress(f"drain: {n:,} jobs, one worker process, concurrency {c}{tag}")
            done.append(workloads.drain(fresh, n, c))
    if "yardstick" in args.only:
        progress(f"yardstick: raw {target.name} statements, {n:,} jobs each{tag}")
        done.extend({**y, "yardstick": True} for y in target.yardsticks(n, quick=args.quick))
    return done


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median jobs/s (the lower middle one for an even count), with every
    run's jobs/s kept alongside."""
    if len(runs) == 1:
        return runs[0]
    ranked = sorted(runs, key=lambda r: r.get("jobs_per_s") or 0.0)
    row = dict(ranked[(len(ranked) - 1) // 2])
    row["runs_jobs_per_s"] = [r.get("jobs_per_s") for r in runs]
    return row


def run_profile(
    args: argparse.Namespace, target: Target, results: list[dict[str, Any]]
) -> dict[str, Any]:
    best = [r for r in results if r.get("best")]
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
    load = m.get("load_average")
    if load:
        say(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    say("")

    yardsticks = {y["key"]: y for y in data.get("yardsticks", [])}
    rows = []
    for r in data["results"]:
        rows.append(_result_row(r, yardsticks))
    if rows:
        table(
            "underway",
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
                ("peer", "left"),
            ],
            rows,
        )
        notes = _notes(data["results"])
        for note in notes:
            say(note)
        say("")

    if yardsticks:
        table(
            f"yardstick: raw {m['store']} statements in one process",
            [
                ("yardstick", "left"),
                ("jobs/s", "right"),
                ("runs (min-max)", "right"),
                ("peer", "left"),
            ],
            [
                [y["workload"], rate(y["jobs_per_s"]), _spread(y), PEERS.get(y["key"], "")]
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
    load = data["machine"].get("load_average_end")
    if load:
        say(f"load average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def _result_row(r: dict[str, Any], yardsticks: dict[str, dict[str, Any]]) -> list[str]:
    key = r["key"]
    name = r["workload"] + ("  * best" if r.get("best") else "")
    if r.get("error"):
        name += "  (!) " + r["error"]
    yard = yardsticks.get(YARDSTICK_OF.get(key, ""))
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
        _target(r),
        PEERS.get(key, ""),
    ]


def _spread(r: dict[str, Any]) -> str:
    runs = [v for v in r.get("runs_jobs_per_s") or [] if v]
    if len(runs) < 2:
        return ""
    return f"{min(runs):,.0f}-{max(runs):,.0f}"


def _target(r: dict[str, Any]) -> str:
    goal = TARGETS.get(r["key"])
    if goal is None:
        return ""
    kind, value = goal
    if kind == "p50":
        p50 = r.get("p50_ms")
        met = p50 is not None and p50 <= value
        return f"p50 <= {value:g} ms {'met' if met else 'MISSED'}"
    got = r.get("jobs_per_s")
    met = got is not None and got >= value
    return f">= {value:,.0f}/s {'met' if met else 'MISSED'}"


def _notes(results: list[dict[str, Any]]) -> list[str]:
    notes = []
    if any(r["key"] == "enqueue_one" for r in results):
        notes.append("enqueue one by one: latency columns are one enqueue() call.")
    drains = [r for r in results if r["key"] == "drain"]
    if drains:
        notes.append(
            "drain: jobs/s over the worker's own run_worker(burst=True) call (imports and "
            "store open excluded); ratio against the raw claim-100/complete-100 loop. "
            "First start to last completion in the store: "
            + ", ".join(
                f"c={r['concurrency']} {rate(r.get('store_span_jobs_per_s'))}/s" for r in drains
            )
            + "."
        )
    pickups = [r for r in results if r["key"] == "pickup"]
    for r in pickups:
        notes.append(
            f"{r['workload']}: latency = started_at - created_at over {r['jobs']} jobs "
            f"{r['pause_ms']:g} ms apart (max {ms(r.get('max_ms'))} ms; enqueue to completed "
            f"p50 {ms(r.get('enqueue_to_completed_p50_ms'))} ms, "
            f"p99 {ms(r.get('enqueue_to_completed_p99_ms'))} ms)."
        )
    return notes


def _print_profile(prof: dict[str, Any]) -> None:
    c = prof["concurrency"]
    timed = prof["timed_drain"]
    seconds = timed["seconds"]
    say(
        f"profile of a drain at concurrency {c}: {rate(timed['jobs_per_s'])} jobs/s with store "
        f"calls timed, {rate(prof['profiled_drain']['jobs_per_s'])} jobs/s under cProfile"
    )
    calls = timed.get("store_calls") or {}
    total = sum(v["seconds"] for v in calls.values())
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
    rows.append(["all store calls", "", f"{total:.3f}", "", f"{total / seconds * 100:.0f}%"])
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


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    target = open_target(args.store, args.dir)
    try:
        data: dict[str, Any] = {"machine": machine_info(target)}
        data["config"] = {
            "store": args.store,
            "jobs": args.jobs,
            "concurrency": args.concurrency,
            "pickup_jobs": args.pickup_jobs,
            "pickup_pause_ms": args.pickup_pause_ms,
            "quick": args.quick,
            "repeat": args.repeat,
            "targets": {k: v[1] for k, v in TARGETS.items()},
            "peers": PEERS,
        }
        data.update(run_all(args, target))
        if hasattr(os, "getloadavg"):
            data["machine"]["load_average_end"] = os.getloadavg()
    finally:
        target.cleanup()
    print_report(args, data)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data, indent=2, default=str) + "\n")
        report.progress(f"raw numbers written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
