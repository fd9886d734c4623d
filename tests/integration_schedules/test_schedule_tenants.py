"""Schedules run once per tenant (`tenants=`, decision 0020): each slot fires one job per
tenant, carrying its tenant and slot, never two for one (schedule, slot, tenant), also with
several schedulers and after a downtime; a function lists the tenants at each slot; stored
schedules keep a list; listings show the tenants.

Every test runs once per store kind (SQLite file; PostgreSQL schema when configured).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from schedule_support import T, all_jobs

import underway
from underway import ConfigurationError, InvalidArguments, testing

MakeApp = Callable[..., underway.App]

SEEN: list[tuple[str | None, datetime | None]] = []


def bill(ctx: underway.Context) -> str:
    SEEN.append((ctx.job.tenant, ctx.slot))
    return f"billed {ctx.job.tenant}"


def build(app: underway.App, **options: Any) -> underway.App:
    """The task `bill` and the schedule `bill-each-tenant` on it, as each process declares."""
    app.schedule(app.task(name="bill")(bill), every=60, name="bill-each-tenant", **options)
    return app


def at(minutes: int) -> datetime:
    """The slot `minutes` after the fake clocks' start."""
    return T + timedelta(minutes=minutes)


def fired(jobs: list[underway.Job]) -> list[tuple[datetime | None, str | None]]:
    return sorted((job.slot, job.tenant) for job in jobs)


def test_each_slot_fires_one_job_per_tenant_and_a_second_scheduler_adds_none(
    fast_app: MakeApp,
) -> None:
    clock = testing.Clock()
    app = build(fast_app(), tenants=["acme", "globex"])
    one = testing.scheduler(app, clock=clock)
    two = testing.scheduler(build(fast_app(), tenants=["acme", "globex"]), clock=clock)
    assert fired(one.tick()) == [(at(0), "acme"), (at(0), "globex")]
    assert two.tick() == []
    clock.advance(60)
    assert fired(two.tick()) == [(at(1), "acme"), (at(1), "globex")]
    assert one.tick() == [] and two.tick() == []

    jobs = all_jobs(app)
    assert Counter((j.schedule, j.slot, j.tenant) for j in jobs) == {
        ("bill-each-tenant", at(k), t): 1 for k in (0, 1) for t in ("acme", "globex")
    }
    SEEN.clear()
    testing.drain(app)
    assert sorted(SEEN) == sorted((t, at(k)) for k in (0, 1) for t in ("acme", "globex"))
    # each tenant sees its own runs
    assert {j.tenant for j in app.list_jobs(tenant="acme").jobs} == {"acme"}


def test_catch_up_all_fires_every_missed_slot_once_per_tenant(fast_app: MakeApp) -> None:
    options: dict[str, Any] = {"tenants": ["a", "b"], "catch_up": "all", "misfire_grace": 5}
    clock = testing.Clock()
    app = build(fast_app(), **options)
    testing.scheduler(app, clock=clock).tick()
    clock.advance(3 * 60 + 30)  # slots 1..3 missed while no scheduler ran
    restarted = [testing.scheduler(build(fast_app(), **options), clock=clock) for _ in range(2)]
    caught_up = restarted[0].tick() + restarted[1].tick()
    assert fired(caught_up) == [(at(k), t) for k in (1, 2, 3) for t in ("a", "b")]
    assert len(all_jobs(app)) == 8


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_function_lists_the_tenants_at_each_slot(fast_app: MakeApp, kind: str) -> None:
    active = ["a"]

    def tenants() -> list[str]:
        return [*active, "a"]  # a repeat fires once

    async def tenants_async() -> list[str]:
        await asyncio.sleep(0)
        return tenants()

    lister = tenants if kind == "sync" else tenants_async
    clock = testing.Clock()
    app = build(fast_app(), tenants=lister)
    scheduler = testing.scheduler(app, clock=clock)
    assert fired(scheduler.tick()) == [(at(0), "a")]
    active.append("b")
    clock.advance(60)
    assert fired(scheduler.tick()) == [(at(1), "a"), (at(1), "b")]
    (info,) = app.list_schedules()
    assert info.tenants is None and info.tenants_from is not None
    assert info.tenants_from.endswith(lister.__qualname__)


def test_a_failing_tenants_function_fires_the_slot_once_it_answers(fast_app: MakeApp) -> None:
    answers: list[Any] = [RuntimeError("tenant database down"), ["a", ""], ["a", "b"]]

    def tenants() -> list[str]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return list(answer)

    clock = testing.Clock()
    scheduler = testing.scheduler(build(fast_app(), tenants=tenants), clock=clock)
    assert scheduler.tick() == []  # the function failed: nothing fired, the slot is not lost
    assert scheduler.tick() == []  # an empty tenant is refused the same way
    clock.advance(5)
    assert fired(scheduler.tick()) == [(at(0), "a"), (at(0), "b")]


def test_periodic_takes_tenants_and_the_listing_shows_them(fast_app: MakeApp) -> None:
    app = fast_app()

    @app.periodic(every=3600, tenants=("acme", "globex"), schedule_name="usage")
    def report_usage(ctx: underway.Context) -> None: ...

    clock = testing.Clock()
    assert fired(testing.scheduler(app, clock=clock).tick()) == [(T, "acme"), (T, "globex")]
    (info,) = app.list_schedules()
    assert (info.tenant, info.tenants, info.tenants_from) == (None, ("acme", "globex"), None)
    # a process that does not declare it still shows the tenants (from the store)
    (elsewhere,) = fast_app().list_schedules()
    assert elsewhere.tenants == ("acme", "globex") and not elsewhere.registered


def test_trigger_runs_a_schedule_per_tenant_for_one_tenant(fast_app: MakeApp) -> None:
    app = build(fast_app(), tenants=["a", "b"])
    job = app.trigger_schedule("bill-each-tenant", tenant="b")
    assert (job.tenant, job.schedule, job.slot) == ("b", "bill-each-tenant", None)
    with pytest.raises(InvalidArguments, match=r"once per tenant.*tenant="):
        app.trigger_schedule("bill-each-tenant")
    with pytest.raises(InvalidArguments, match="does not run for tenant 'c'"):
        app.trigger_schedule("bill-each-tenant", tenant="c")


def test_a_stored_schedule_keeps_a_list_of_tenants_but_refuses_a_function(
    fast_app: MakeApp,
) -> None:
    clock = testing.Clock()
    control = fast_app()
    control.task(name="bill")(bill)
    control.schedule("bill", every=60, name="stored-bill", stored=True, tenants=["x", "y"])
    control.store.restart_schedule("stored-bill", clock())
    elsewhere = fast_app()
    elsewhere.task(name="bill")(bill)
    assert fired(testing.scheduler(elsewhere, clock=clock).tick()) == [(T, "x"), (T, "y")]
    (info,) = control.list_schedules()
    assert info.stored and info.tenants == ("x", "y")
    with pytest.raises(ConfigurationError, match="a function cannot be stored"):
        control.schedule("bill", every=60, name="other", stored=True, tenants=lambda: ["x"])


def test_what_tenants_cannot_mean_is_refused(fast_app: MakeApp) -> None:
    app = fast_app()
    task = app.task(name="bill")(bill)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"tenants": ["a"], "tenant": "a"}, "not both"),
        ({"tenants": []}, "at least one tenant"),
        ({"tenants": "acme"}, "list of tenants"),
        ({"tenants": ["a", "a"]}, "more than once"),
        ({"tenants": ["a", ""]}, "non-empty string"),
    ]
    for options, message in cases:
        with pytest.raises(ConfigurationError, match=message):
            app.schedule(task, every=60, **options)
    with pytest.raises(ConfigurationError, match="not both"):
        app.periodic(every=60, tenant="a", tenants=["b"])
