"""Fast stats (migration 0007), on every store: the counts kept by triggers equal a count of
the jobs themselves after every kind of change, on one connection or several; and the
finishes per minute count each final state reached, whatever happens to the job later."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from underway.ids import uuid7
from underway.model import Job, JobError, RunStats, Stats, Status
from underway.stores import Store
from underway.stores.messages import JobFilter, NewJob, Outcome

Put = Callable[..., Job]
Claim = Callable[..., Any]
FINISHED = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)


def every_job(store: Store, tenant: str | None = None) -> list[Job]:
    """Every job, read page by page through list_jobs: the brute truth."""
    jobs: list[Job] = []
    cursor = None
    while True:
        page = store.list_jobs(JobFilter(tenant=tenant), 100, cursor)
        jobs.extend(page.jobs)
        if page.next_cursor is None:
            return jobs
        cursor = page.next_cursor


def brute_counts(jobs: list[Job]) -> dict[str, Any]:
    """by_status, by_task, by_queue and by_tenant as Stats has them, counted job by job."""

    def zeros() -> dict[str, int]:
        return {st.value: 0 for st in Status}

    out: dict[str, Any] = {"by_status": zeros(), "by_task": {}, "by_queue": {}, "by_tenant": {}}
    for job in jobs:
        out["by_status"][job.status.value] += 1
        for table, name in (("by_task", job.task), ("by_queue", job.queue),
                            ("by_tenant", job.tenant)):  # fmt: skip
            if name is not None:
                out[table].setdefault(name, zeros())[job.status.value] += 1
    return out


def counts_of(stats: Stats) -> dict[str, Any]:
    return {name: getattr(stats, name) for name in ("by_status", "by_task", "by_queue",
                                                     "by_tenant")}  # fmt: skip


def brute_runs(jobs: list[Job], group: Callable[[Job], str | None]) -> dict[str, RunStats]:
    """RunStats per name, from the finished runs themselves."""
    runs: dict[str, list[Job]] = {}
    for job in jobs:
        name = group(job)
        if name and job.status in (Status.COMPLETED, Status.FAILED) and job.started_at:
            runs.setdefault(name, []).append(job)
    out = {}
    for name, done in runs.items():
        assert all(j.completed_at for j in done)
        done.sort(key=lambda j: (j.completed_at, j.id), reverse=True)
        durations = [(j.completed_at - j.started_at).total_seconds() for j in done]  # type: ignore[operator]
        streak = 0
        for job in done[:10]:
            if job.status is not Status.FAILED:
                break
            streak += 1
        out[name] = RunStats(
            runs=len(done), failures=sum(j.status is Status.FAILED for j in done),
            last_run=done[0].started_at, last_status=done[0].status.value,
            last_duration=pytest.approx(durations[0], abs=1e-5),
            average_duration=pytest.approx(sum(durations) / len(durations), abs=1e-5),
            consecutive_failures=streak,
        )  # fmt: skip
    return out


def assert_counts_true(store: Store, tenants: tuple[str, ...] = ("acme", "globex")) -> None:
    jobs = every_job(store)
    assert counts_of(store.stats()) == brute_counts(jobs)
    for tenant in tenants:
        assert counts_of(store.stats(tenant)) == brute_counts(every_job(store, tenant))
    tasks, schedules = store.run_stats()
    assert {n: dataclasses.replace(s, running=0) for n, s in tasks.items() if s.runs} == (
        brute_runs(jobs, lambda j: j.task)
    )
    assert {n: s for n, s in schedules.items() if s.runs} == brute_runs(jobs, lambda j: j.schedule)


def a_mix_of_everything(
    store: Store, put: Put, new_job: Callable[..., NewJob], rescue: Callable[[], Any]
) -> None:
    """Enqueues, claims, completions, failures, retry waits, a person's retries, cancels of
    pending and running jobs, a rescue, a delete: over two tasks, queues and tenants."""
    error = JobError("boom", "ValueError")
    for n in range(12):
        put(store, task=f"tests.t{n % 2}", queue=("default", "bulk")[n % 3 == 0],
            tenant=(None, "acme", "globex")[n % 3], max_attempts=2)  # fmt: skip
    store.register_schedule("nightly", "tests.noop", "every 1h", datetime.now(UTC))
    for _ in range(3):
        job = dataclasses.replace(new_job(tenant="acme"), id=uuid7(), schedule="nightly")
        store.trigger_schedule("nightly", job)
    outcomes = []
    for n, claimed in enumerate(store.claim("w1", None, 10)):
        kind = n % 4
        if kind == 0:
            outcomes.append(Outcome.completed(claimed.job.id, claimed.token, "1"))
        elif kind == 1:
            outcomes.append(Outcome.failed(claimed.job.id, claimed.token, error))
        elif kind == 2:
            outcomes.append(Outcome.retry_later(claimed.job.id, claimed.token, error, 0.0))
        else:
            store.cancel(claimed.job.id)  # a cancel request: the worker ends it cancelled
            outcomes.append(Outcome.cancelled(claimed.job.id, claimed.token, error))
    store.finish(outcomes)
    failed = store.list_jobs(JobFilter(status=Status.FAILED), 100, None).jobs
    store.retry(failed[0].id)  # failed -> pending: its tally is taken back
    pending = store.list_jobs(JobFilter(status=Status.PENDING), 100, None).jobs
    store.cancel(pending[-1].id)  # a pending job cancelled
    rescue()
    done = store.list_jobs(JobFilter(status=Status.COMPLETED), 100, None).jobs
    store.delete_job(done[0].id)
    for claimed in store.claim("w2", None, 3):
        store.finish([Outcome.completed(claimed.job.id, claimed.token, "2")])


def test_the_counts_equal_a_count_of_the_jobs_after_every_kind_of_change(
    short_store: Store, put: Put, new_job: Callable[..., NewJob], claim_one: Claim,
    rescue_until: Callable[..., Any],
) -> None:  # fmt: skip
    store = short_store

    def rescue() -> None:
        # Two workers die: one job goes back to pending, one (no attempts left) to failed.
        again = put(store, queue="doomed", tenant="globex")
        final = put(store, queue="doomed", task="tests.t1", max_attempts=1)
        claim_one(store, ["doomed"], worker="w-dies")
        claim_one(store, ["doomed"], worker="w-dies")
        rescue_until(store, again.id, final.id)
        assert store.get(final.id).status is Status.FAILED  # type: ignore[union-attr]

    a_mix_of_everything(store, put, new_job, rescue)
    assert {j.status for j in every_job(store)} >= {*FINISHED, Status.PENDING}
    assert_counts_true(store)

    assert store.prune(0.0, list(FINISHED)) > 0
    assert_counts_true(store)
    assert [store.stats().by_status[st] for st in FINISHED] == [0, 0, 0]


def test_counts_stay_true_when_several_connections_finish_and_prune(
    make_store: Callable[..., Store], put: Put
) -> None:
    first, second, third = make_store(), make_store(), make_store()
    for n in range(9):
        put(first, task=f"tests.t{n % 3}", tenant=("acme", None)[n % 2])
    for store in (first, second, third):  # each finishes on its own connection (its shard)
        claimed = store.claim(f"w-{id(store)}", None, 3)
        done = [Outcome.completed(c.job.id, c.token, "null") for c in claimed[:2]]
        store.finish(
            [*done, Outcome.failed(claimed[2].job.id, claimed[2].token, JobError("x", "E"))]
        )
    assert_counts_true(first)
    third.close()  # its connections are gone: pruning folds their rows
    second.retry(first.list_jobs(JobFilter(status=Status.FAILED), 1, None).jobs[0].id)
    assert second.prune(0.0, [Status.COMPLETED]) == 6
    assert_counts_true(first)
    assert_counts_true(second)


# --- finishes per minute ------------------------------------------------------------------------


def minute_of(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def totals(store: Store, minutes: int = 5, tenant: str | None = None) -> dict[str, int]:
    history = store.stats_history(minutes, tenant)
    return {name: sum(getattr(m, name) for m in history)
            for name in ("completed", "failed", "cancelled")}  # fmt: skip


def test_the_history_has_one_entry_per_minute_oldest_first_ending_now(store: Store) -> None:
    before = minute_of(store.now())
    history = store.stats_history(60)
    after = minute_of(store.now())
    assert len(history) == 60
    assert history[-1].at in (before, after)
    assert all(b.at - a.at == timedelta(minutes=1) for a, b in itertools.pairwise(history))
    assert all(m.at.utcoffset() == timedelta(0) for m in history)
    assert all((m.completed, m.failed, m.cancelled) == (0, 0, 0) for m in history)


def test_each_final_state_reached_is_counted_in_its_minute_and_kept(
    store: Store, put: Put, claim_one: Claim, complete: Callable[..., Any],
    fail: Callable[..., Any],
) -> None:  # fmt: skip
    # Each job is put when it is the only one due: tenants take turns, and the test needs to
    # know which one a claim takes.
    for _ in range(2):
        put(store, tenant="acme", max_attempts=1)
    complete(store, claim_one(store))
    complete(store, claim_one(store))
    put(store, max_attempts=1)
    failed = claim_one(store)
    fail(store, failed)
    doomed = put(store, tenant="globex")
    store.cancel(doomed.id)
    assert totals(store) == {"completed": 2, "failed": 1, "cancelled": 1}
    assert totals(store, tenant="acme") == {"completed": 2, "failed": 0, "cancelled": 0}
    assert totals(store, tenant="globex") == {"completed": 0, "failed": 0, "cancelled": 1}

    store.retry(failed.job.id)  # the failure happened: a retry takes nothing back
    fail(store, claim_one(store))  # and failing again counts again
    store.prune(0.0, list(FINISHED))  # pruning the jobs keeps their minutes
    assert totals(store) == {"completed": 2, "failed": 2, "cancelled": 1}
    finished_at = store.stats_history(5)
    assert sum(m.completed for m in finished_at[-2:]) == 2  # this minute (or the one before)


def test_minutes_older_than_a_day_are_pruned_with_the_jobs(store: Store, put: Put) -> None:
    for _ in range(2):
        store.cancel(put(store).id)
    assert totals(store)["cancelled"] == 2
    _run_sql(store, "UPDATE {table} SET minute = minute - 86400 - 120")  # two days ago
    _run_sql(store, "INSERT INTO {table} (minute, tenant, shard, cancelled) "
                    "SELECT minute + 86400, tenant, shard, cancelled FROM {table}")  # fmt: skip
    assert totals(store, 1440)["cancelled"] == 2  # the minute of yesterday still counts
    store.prune(3600.0, list(FINISHED))
    assert _run_sql(store, "SELECT count(*) FROM {table}") == 1  # the older one is gone
    assert totals(store, 1440)["cancelled"] == 2


def _run_sql(store: Store, text: str) -> Any:
    """Run `text` on the minutes table ({table}) with the store's own connection: no verb
    moves a minute back in time. Returns the first value of the first row, if any."""
    table = "underway_minutes"
    schema = getattr(store, "schema", None)
    if schema is not None:
        table = f'"{schema}".underway_minutes'
    with store._writing() as conn:  # type: ignore[attr-defined]
        cursor = conn.execute(text.format(table=table))
        rows = cursor.fetchall() if cursor.description else []
    return rows[0][0] if rows else None


def test_minutes_out_of_range_are_refused_with_the_range(make_app: Callable[..., Any]) -> None:
    app = make_app()
    for minutes in (0, 1441, 2.5):
        with pytest.raises(ValueError, match="from 1 to 1440"):
            app.stats_history(minutes)
    assert len(app.stats_history(1440)) == 1440


def test_migration_0007_counts_the_jobs_that_finished_before_it(
    make_store: Callable[..., Store], put: Put, claim_one: Claim, monkeypatch: pytest.MonkeyPatch
) -> None:
    from underway.stores.postgres import store as postgres_store
    from underway.stores.sqlite import store as sqlite_store

    for module in (sqlite_store, postgres_store):
        # 0009 (a column every insert writes) and 0014 (the index claims walk) too:
        # migrations apply by number, not in a row
        before = [m for m in module.MIGRATIONS if m[0] < 7 or m[0] in (9, 14)]
        monkeypatch.setattr(module, "MIGRATIONS", before)
    old = make_store()  # a store as it was before 0007
    for n in range(6):
        put(old, task=f"tests.t{n % 2}", tenant=("acme", None)[n % 2], max_attempts=1)
    claimed = old.claim("w", None, 4)
    error = JobError("boom", "ValueError")
    old.finish([Outcome.completed(c.job.id, c.token, "1") for c in claimed[:3]]
               + [Outcome.failed(claimed[3].job.id, claimed[3].token, error)])  # fmt: skip
    old.cancel(old.list_jobs(JobFilter(status=Status.PENDING), 1, None).jobs[0].id)
    monkeypatch.undo()

    store = make_store()  # migrates 0007
    assert_counts_true(store)
    assert store.stats().by_status == {"pending": 1, "running": 0, "completed": 3, "failed": 1,
                                       "cancelled": 1}  # fmt: skip
    assert totals(store) == {"completed": 3, "failed": 1, "cancelled": 1}
