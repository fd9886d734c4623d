"""The table of a fault-suite run: one row per scenario and store, printed at the end of the
run and written as Markdown with `--faults-table PATH` (docs/reliability.md holds a copy)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from verdict import Verdict

VERDICTS: list[Verdict] = []

HEADER = (
    "| scenario | store | jobs | faults injected | lost | duplicated (allowed) | unexpected "
    "| invariants | result |\n|---|---|---:|---|---:|---:|---:|---|---|"
)


def record(verdict: Verdict) -> None:
    VERDICTS.append(verdict)


def row(v: Verdict) -> str:
    broken = [name.split(" ", 1)[0] for name, found in v.invariants.items() if found]
    failed = [name for name, (ok, _) in v.checks.items() if not ok]
    invariants = "I1-I5 hold" if not broken else "broken: " + ", ".join(broken)
    faults = "; ".join(v.faults) or "none"
    result = "pass" if v.passed else "FAIL" + (f" ({', '.join(failed)})" if failed else "")
    return (
        f"| {v.scenario} | {v.store} | {v.jobs} | {faults} | {len(v.lost)} "
        f"| {len(v.duplicated)} ({len(v.allowed_duplicates)}) | {len(v.unexpected)} "
        f"| {invariants} | {result} |"
    )


def table() -> str:
    ordered = sorted(VERDICTS, key=lambda v: (v.scenario, v.store))
    return "\n".join([HEADER, *(row(v) for v in ordered)])
