"""Tenants as a dimension in Python, on every store: stats by tenant and for one tenant, a
tenant on schedules and on the jobs they fire, listing jobs by tenant."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import pytest

from underway import App, ConfigurationError, Status, testing

MakeApp = Callable[..., App]


def _tasks(app: App) -> tuple[object, object]:
    @app.task(name="tests.ok", queue="q1")
    def ok() -> str:
        return "ok"

    @app.task(name="tests.bad", queue="q2", max_attempts=1)
    def bad() -> None:
        raise ValueError("no")

    return ok, bad


def test_stats_count_jobs_by_tenant_and_leave_untenanted_jobs_out_of_that_table(
    make_app: MakeApp,
) -> None:
    app = make_app()
    ok, bad = _tasks(app)
    ok.options(tenant="acme").enqueue()  # type: ignore[attr-defined]
    ok.options(tenant="acme").enqueue()  # type: ignore[attr-defined]
    bad.options(tenant="globex").enqueue()  # type: ignore[attr-defined]
    ok.enqueue()  # type: ignore[attr-defined]
    testing.drain(app)

    stats = app.stats()
    assert stats.tenant is None
    assert stats.by_tenant == {
        "acme": {"pending": 0, "running": 0, "completed": 2, "failed": 0, "cancelled": 0},
        "globex": {"pending": 0, "running": 0, "completed": 0, "failed": 1, "cancelled": 0},
    }
    assert stats.total == 4  # the job without a tenant is in every other count


def test_stats_for_one_tenant_scope_every_count(make_app: MakeApp) -> None:
    app = make_app()
    ok, bad = _tasks(app)
    ok.options(tenant="acme").enqueue()  # type: ignore[attr-defined]
    bad.options(tenant="acme").enqueue()  # type: ignore[attr-defined]
    ok.options(tenant="globex").enqueue()  # type: ignore[attr-defined]
    ok.enqueue()  # type: ignore[attr-defined]
    testing.drain(app)
    ok.options(tenant="acme", delay=timedelta(hours=1)).enqueue()  # type: ignore[attr-defined]
    ok.options(tenant="globex", delay=timedelta(hours=1)).enqueue()  # type: ignore[attr-defined]

    acme = app.stats(tenant="acme")
    assert acme.tenant == "acme"
    assert acme.by_status == {
        "pending": 1, "running": 0, "completed": 1, "failed": 1, "cancelled": 0,
    }  # fmt: skip
    assert acme.by_task["tests.ok"]["completed"] == 1
    assert acme.by_queue["q2"]["failed"] == 1
    assert list(acme.by_tenant) == ["acme"]
    assert acme.scheduled == 1
    assert acme.tasks["tests.ok"].runs == 1
    assert acme.tasks["tests.bad"].failures == 1

    nobody = app.stats(tenant="initech")
    assert nobody.total == 0 and nobody.tasks == {} and nobody.by_task == {}


def test_the_async_stats_take_the_tenant_too(make_app: MakeApp) -> None:
    app = make_app()
    ok, _ = _tasks(app)
    ok.options(tenant="acme").enqueue()  # type: ignore[attr-defined]
    ok.enqueue()  # type: ignore[attr-defined]
    assert asyncio.run(app.stats_async(tenant="acme")).total == 1
    assert asyncio.run(app.stats_async()).total == 2


def test_jobs_a_periodic_schedule_fires_carry_its_tenant(make_app: MakeApp) -> None:
    app = make_app()

    @app.periodic(every=timedelta(minutes=5), name="tests.beat", tenant="acme")
    def beat() -> None: ...

    clock = testing.Clock()
    scheduler = testing.scheduler(app, clock=clock)
    scheduler.tick()  # registers the schedule; its first slot is now
    clock.advance(timedelta(minutes=5))
    fired = scheduler.tick()
    assert fired and all(job.tenant == "acme" for job in fired)
    assert {job.tenant for job in app.list_jobs(tenant="acme").jobs} == {"acme"}
    assert app.list_jobs(tenant="globex").jobs == []


def test_a_triggered_schedule_job_carries_its_tenant_and_the_listing_shows_it(
    make_app: MakeApp,
) -> None:
    app = make_app()

    @app.task(name="tests.report")
    def report() -> None: ...

    app.schedule(report, cron="0 3 * * *", name="nightly", tenant="globex")
    app.schedule(report, every=60, name="plain")
    job = app.trigger_schedule("nightly")
    assert job.tenant == "globex"
    assert app.get_job(job.id).tenant == "globex"  # type: ignore[union-attr]
    assert app.trigger_schedule("plain").tenant is None
    listed = {info.name: info.tenant for info in app.list_schedules()}
    assert listed == {"nightly": "globex", "plain": None}


def test_the_store_keeps_a_schedules_tenant_for_apps_that_do_not_define_it(
    make_app: MakeApp,
) -> None:
    app = make_app()

    @app.periodic(every=60, name="tests.beat", schedule_name="beat", tenant="acme")
    def beat() -> None: ...

    testing.scheduler(app).tick()
    other = make_app()  # another process, whose app does not declare the schedule
    [info] = other.list_schedules()
    assert (info.name, info.registered, info.tenant) == ("beat", False, "acme")


def test_a_changed_tenant_replaces_the_stored_one(make_app: MakeApp) -> None:
    app = make_app()

    @app.task(name="tests.beat")
    def beat() -> None: ...

    app.schedule(beat, every=60, name="beat", tenant="acme")
    testing.scheduler(app).tick()
    again = make_app()
    again.task(name="tests.beat")(lambda: None)
    again.schedule("tests.beat", every=60, name="beat", tenant="globex")
    testing.scheduler(again).tick()
    assert [info.tenant for info in make_app().list_schedules()] == ["globex"]


@pytest.mark.parametrize("tenant", ["", 7])
def test_a_schedule_tenant_must_be_a_name(make_app: MakeApp, tenant: object) -> None:
    app = make_app()

    @app.task(name="tests.beat")
    def beat() -> None: ...

    with pytest.raises(ConfigurationError, match="tenant must be a non-empty string"):
        app.schedule(beat, every=60, tenant=tenant)  # type: ignore[arg-type]


def test_periodic_lists_tenant_among_its_options(make_app: MakeApp) -> None:
    app = make_app()
    with pytest.raises(ConfigurationError, match="tenant"):
        app.periodic(every=60, tenants="acme")  # type: ignore[call-arg]


def test_listing_by_tenant_returns_only_that_tenants_jobs(make_app: MakeApp) -> None:
    app = make_app()
    ok, _ = _tasks(app)
    mine = ok.options(tenant="acme").enqueue()  # type: ignore[attr-defined]
    ok.options(tenant="globex").enqueue()  # type: ignore[attr-defined]
    ok.enqueue()  # type: ignore[attr-defined]
    assert [job.id for job in app.list_jobs(tenant="acme").jobs] == [mine.id]
    assert [job.status for job in app.list_jobs(tenant="acme", status="pending").jobs] == [
        Status.PENDING
    ]
