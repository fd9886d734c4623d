"""What migration 0007 (tallies, minutes and the dashboard's indexes) costs the hot paths:
`./run shell .venv/bin/python benchmarks/tallies_cost.py [--store sqlite|postgres] [--rounds 4]
[--jobs 10000]`. Each round runs, alternating, the same workloads on a fresh store as it ships
and on one with 0007's triggers and indexes dropped: enqueue one by one, enqueue_many in
chunks of 1,000, and a drain (1 worker process, concurrency 100). Prints every round and the
medians. Nothing here asserts a timing. (Without the tallies, app.stats() counts no finished
jobs, so the drain's rate is its jobs over its wall time, not checked by the stats.)
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

import workloads
from live import drop_from_jobs
from report import progress, say
from targets import open_target

TRIGGERS = {
    "sqlite": ["underway_tally_finished", "underway_tally_changed", "underway_tally_inserted",
               "underway_tally_deleted"],
    "postgres": ["underway_tally_inserted", "underway_tally_updated", "underway_tally_deleted"],
}  # fmt: skip
INDEXES = ["underway_jobs_queue", "underway_jobs_task_runs", "underway_jobs_schedule_runs"]


def without_0007(url: str, store: str) -> None:
    """Migrate `url`, then drop what 0007 added to the job table's writes."""
    drop_from_jobs(url, store, TRIGGERS[store], INDEXES)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--store", default="sqlite", choices=("sqlite", "postgres"))
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--jobs", type=int, default=10_000)
    args = p.parse_args()
    target = open_target(args.store, None)
    results: dict[str, dict[str, list[float]]] = {"on": {}, "off": {}}
    try:
        for r in range(args.rounds):
            order = ("on", "off") if r % 2 == 0 else ("off", "on")
            for variant in order:

                def fresh(label: str, v: str = variant) -> str:
                    url = target.fresh_url(f"{label}-{v}")
                    if v == "off":
                        without_0007(url, args.store)
                    return url

                rows: list[tuple[str, Any]] = [
                    ("enqueue one", lambda: workloads.enqueue_one(fresh, args.jobs // 5)),
                    ("enqueue_many x1000", lambda: workloads.enqueue_bulk(fresh, args.jobs, 1000)),
                    ("drain c100", lambda: workloads.drain(fresh, args.jobs, 100, processes=1)),
                ]
                for name, run in rows:
                    progress(f"round {r + 1}/{args.rounds}, 0007 {variant}: {name}")
                    row = run()
                    # Without the tallies app.stats() counts no finished job, so the drain's
                    # own check finds none completed: its rate is then its jobs over its time.
                    rate = row["jobs_per_s"] or row["jobs"] / row["seconds"]
                    results[variant].setdefault(name, []).append(rate)
                    say(f"round {r + 1} {name:20} 0007 {variant:3}: {rate:9,.0f} jobs/s")
    finally:
        target.cleanup()
    for name in results["on"]:
        on, off = (statistics.median(results[v][name]) for v in ("on", "off"))
        say(f"{args.store} {name:20} median with 0007 {on:9,.0f}/s, without {off:9,.0f}/s: "
            f"{on / off - 1:+.1%}  (on {_span(results['on'][name])}, off "
            f"{_span(results['off'][name])})")  # fmt: skip


def _span(values: list[float]) -> str:
    return f"{min(values):,.0f}-{max(values):,.0f}"


if __name__ == "__main__":
    main()
