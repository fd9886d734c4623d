"""F22 poison exceptions and the dead letters, both stores. Catalogue: jobs that always raise,
return unserialisable results, or carry an unknown schema_version.

Pass: in the dead letters after exactly `max_attempts` with the error's class, message,
traceback and each attempt's times; a replay from the dead letters starts a new attempt chain;
the dead letters' retention purge works; the other jobs all complete beside them.

underway's choices, asserted here: a result that is not JSON can never succeed, so it fails
at its first attempt (type NotRunnable, saying so) rather than after max_attempts. Jobs carry
no schema_version: a job whose stored arguments no longer fit its task fails the same way
(NotRunnable), which tests/integration covers. Not asserted: "throughput of the other jobs
within 5 % of baseline", since identical drains on this shared 2-core machine differ by more
than that (benchmarks/ measures throughput).

CI size: 20 failing, 10 unserialisable and 200 ordinary jobs on 2 workers x 4 slots."""

from __future__ import annotations

import time

from harness import MakeScenario


def test_f22_poison_exceptions_reach_the_dead_letters(scenario: MakeScenario) -> None:
    s = scenario("F22 poison exceptions and the dead letters")
    failing = s.enqueue("faults.always_fails", [{}] * s.sizes.pick(20, 100))
    bad_result = s.enqueue("faults.unserialisable", [{}] * s.sizes.pick(10, 50))
    ordinary = s.enqueue("faults.probe", [{"seconds": 0.01}] * s.sizes.pick(200, 1000))
    s.fleet.start_many(2, concurrency=4)
    first_settle = s.settle(timeout=60)
    s.fault("jobs that always raise and jobs that return no JSON, among ordinary jobs")

    rows = s.raw.jobs()
    wrong_failures = []
    for probe in failing:
        job, attempts = s.app.get_job(probe), s.app.attempts(probe)
        assert job is not None
        error = job.error
        if not (
            job.status.value == "failed" and job.attempt == 3 and len(attempts) == 3
            and error is not None and error.type == "RuntimeError"
            and "attempt 3 of a job that always fails" in error.message
            and "Traceback" in error.traceback
            and all(a.started_at and a.ended_at and a.outcome in ("retry", "failed")
                    for a in attempts)
        ):  # fmt: skip
            wrong_failures.append((probe, job.status, job.attempt, len(attempts), error))
    wrong_results = [
        (p, rows[p].status, rows[p].attempt, rows[p].error_type)
        for p in bad_result
        if (rows[p].status, rows[p].attempt, rows[p].error_type) != ("failed", 1, "NotRunnable")
    ]
    ordinary_done = all(rows[p].status == "completed" for p in ordinary)

    replayed = failing[0]
    s.app.retry(replayed)
    s.fault("one dead letter replayed")
    replay_settled = s.settle(timeout=30)
    chain = s.app.attempts(replayed)
    again = s.app.get_job(replayed)
    new_chain = (again is not None and again.status.value == "failed" and again.attempt == 3
                 and [a.number for a in chain] == [1, 2, 3, 1, 2, 3])  # fmt: skip

    # Retention: a worker that keeps dead letters 1 s prunes them, and only them.
    s.fleet.settings = {**s.fleet.settings, "failed_retention_seconds": 1.0,
                        "prune_interval_seconds": 0.5}  # fmt: skip
    s.fleet.start(concurrency=1)
    s.fault("a worker keeping dead letters 1 s")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = s.raw.jobs()
        if not any(r.status == "failed" for r in left.values()):
            break
        time.sleep(0.2)
    left = s.raw.jobs()
    purged = not any(r.status == "failed" for r in left.values())
    kept = all(p in left and left[p].status == "completed" for p in ordinary)

    verdict = s.verdict(allow_duplicates="none")
    # The purged dead letters are gone from the store: by then they had finished, not lost.
    verdict.lost -= set(failing) | set(bad_result)
    (
        verdict.require("everything finished", first_settle and replay_settled, "")
        .require("failing jobs: dead after exactly max_attempts, with error and attempts",
                 not wrong_failures, f"{wrong_failures[:2]}")
        .require("a result that is not JSON fails at once (NotRunnable)", not wrong_results,
                 f"{wrong_results[:3]}")
        .require("the ordinary jobs all complete", ordinary_done, "")
        .require("a replay starts a new attempt chain", new_chain,
                 f"{[(a.number, a.outcome) for a in chain]}")
        .require("the dead letters' retention purges them, and only them", purged and kept, "")
        .check()
    )  # fmt: skip
