"""What runs when: priority then first-in-first-out, delayed jobs not before their time, queues
served by the worker that asks for them, and unique keys while a job is unfinished."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import underway
from underway import App, Status
from underway.testing import RunningWorker

MakeApp = Callable[..., App]
Drain = Callable[..., int]
StartWorker = Callable[..., RunningWorker]
WaitFor = Callable[..., object]


def test_jobs_run_in_priority_order_then_first_in_first_out(
    fast_app: MakeApp, drain: Drain
) -> None:
    app = fast_app()
    order: list[str] = []

    @app.task(name="tests.record")
    def record(label: str) -> None:
        order.append(label)

    priorities = [0, 5, 0, 10, 5, 0, -1, 10]
    jobs = [record.options(priority=p).enqueue(f"{i}:p{p}") for i, p in enumerate(priorities)]
    assert drain(app, concurrency=1) == len(jobs)

    expected = [job.args["label"] for job in sorted(jobs, key=lambda j: -j.priority)]
    assert order == expected
    assert order[:2] == ["3:p10", "7:p10"] and order[-1] == "6:p-1"


def test_task_priority_is_the_default_and_options_override_it(
    fast_app: MakeApp, drain: Drain
) -> None:
    app = fast_app()
    order: list[str] = []

    @app.task(name="tests.urgent", priority=10)
    def urgent(label: str) -> None:
        order.append(label)

    @app.task(name="tests.routine")
    async def routine(label: str) -> None:
        order.append(label)

    routine.enqueue("routine")
    urgent.enqueue("urgent")
    urgent.options(priority=-5).enqueue("urgent but demoted")
    routine.options(priority=20).enqueue("routine but promoted")
    assert drain(app, concurrency=1) == 4
    assert order == ["routine but promoted", "urgent", "routine", "urgent but demoted"]


def test_a_delayed_job_does_not_run_before_its_time(fast_app: MakeApp, drain: Drain) -> None:
    app = fast_app()
    ran: list[str] = []

    @app.task(name="tests.record")
    def record(label: str) -> None:
        ran.append(label)

    later = record.options(delay=timedelta(hours=1)).enqueue("in an hour")
    tomorrow = record.options(run_at=datetime.now(UTC) + timedelta(days=1)).enqueue("tomorrow")
    now = record.enqueue("now")
    assert drain(app) == 1
    assert ran == ["now"]
    for job in (later, tomorrow):
        waiting = app.get_job(job.id)
        assert waiting is not None
        assert waiting.status is Status.PENDING and waiting.attempt == 0
        assert waiting.started_at is None
    assert {j.id for j in app.list_jobs(view="scheduled").jobs} == {later.id, tomorrow.id}
    assert getattr(app.get_job(now.id), "status", None) is Status.COMPLETED


def test_a_delayed_job_runs_once_its_time_has_come(
    fast_app: MakeApp, start_worker: StartWorker
) -> None:
    app = fast_app()
    started_at: list[datetime | None] = []

    @app.task(name="tests.when")
    def when(ctx: underway.Context) -> None:
        started_at.append(ctx.job.started_at)

    worker = start_worker(app)
    soon = when.options(delay=0.4).enqueue()
    at = when.options(run_at=datetime.now(UTC) + timedelta(seconds=0.3)).enqueue()
    done_soon = app.wait(soon.id, timeout=10)
    done_at = app.wait(at.id, timeout=10)
    worker.stop()

    for job, done in ((soon, done_soon), (at, done_at)):
        assert done.status is Status.COMPLETED
        assert done.started_at is not None
        assert done.run_at == job.run_at
        assert done.started_at >= job.run_at, "the job ran before its time"
    assert len(started_at) == 2


def test_a_worker_serves_only_its_queues(fast_app: MakeApp, drain: Drain) -> None:
    app = fast_app()

    @app.task(name="tests.mail", queue="mail")
    def mail() -> str:
        return "sent"

    @app.task(name="tests.report")
    def report() -> str:
        return "built"

    mail_job = mail.enqueue()
    report_job = report.enqueue()
    bulk_job = report.options(queue="bulk").enqueue()
    worker = underway.Worker(app, queues=["mail", "bulk"], concurrency=2, burst=True)
    assert asyncio.run(worker.drain()) == 2
    assert getattr(app.get_job(mail_job.id), "result", None) == "sent"
    assert getattr(app.get_job(bulk_job.id), "result", None) == "built"
    assert getattr(app.get_job(report_job.id), "status", None) is Status.PENDING
    assert drain(app) == 1
    assert getattr(app.get_job(report_job.id), "status", None) is Status.COMPLETED


def test_a_unique_key_returns_the_same_job_until_it_finished(
    fast_app: MakeApp, start_worker: StartWorker
) -> None:
    app = fast_app()
    started = threading.Event()
    release = threading.Event()

    @app.task(name="tests.sync_account")
    def sync_account(account: str) -> str:
        started.set()
        release.wait(10)
        return f"synced {account}"

    keyed = sync_account.options(key="sync:acme")
    first = keyed.enqueue("acme")
    assert first.key == "sync:acme"
    assert keyed.enqueue("acme-again").id == first.id  # pending

    worker = start_worker(app)
    assert started.wait(10)
    while_running = keyed.enqueue("acme-while-running")
    assert while_running.id == first.id
    assert while_running.status is Status.RUNNING
    assert while_running.args == {"account": "acme"}

    release.set()
    done = app.wait(first.id, timeout=10)
    assert done.status is Status.COMPLETED and done.result == "synced acme"

    started.clear()
    after = keyed.enqueue("acme-next-day")
    assert after.id != first.id
    assert after.status is Status.PENDING and after.args == {"account": "acme-next-day"}
    assert app.wait(after.id, timeout=10).result == "synced acme-next-day"
    worker.stop()
    assert {j.id for j in app.list_jobs(status="completed").jobs} == {first.id, after.id}
