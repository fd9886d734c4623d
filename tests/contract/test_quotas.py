"""Per-tenant enqueue quotas on every store: a token bucket per tenant in the store, taken by
every enqueue path of a producer, never by schedule firings or retries; a refusal writes
nothing (docs/decisions/0026-tenant-quotas.md).

Timings are never asserted tightly: refills are tested with slow rates and sleeps much longer
than the wait they need, or much shorter than a token takes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from underway import App, QuotaExceeded, TenantQuota, testing
from underway.stores import Store
from underway.stores.messages import JobFilter, NewJob, QuotaDemand

MakeApp = Callable[..., App]


def _app(make_app: MakeApp, **settings: Any) -> tuple[App, Any]:
    app = make_app(**settings)

    @app.task(name="tests.send")
    def send(n: int = 0) -> int:
        return n

    return app, send


def _count(app: App, tenant: str | None = None) -> int:
    jobs = app.list_jobs(limit=1000).jobs
    return sum(1 for job in jobs if tenant is None or job.tenant == tenant)


def test_a_burst_passes_then_the_next_job_is_refused_with_retry_after_about_one_over_rate(
    make_app: MakeApp,
) -> None:
    app, send = _app(make_app, tenant_enqueue_rate=1.0, tenant_enqueue_burst=3)
    acme = send.options(tenant="acme")
    for n in range(3):
        acme.enqueue(n)
    with pytest.raises(QuotaExceeded, match="tenant 'acme' is over its enqueue quota") as caught:
        acme.enqueue(3)
    assert caught.value.tenant == "acme"
    assert caught.value.retry_after is not None
    assert 0.5 < caught.value.retry_after <= 1.0  # one token at 1/s, a moment after the burst
    assert "1 jobs/s, burst 3" in str(caught.value) and "retry in" in str(caught.value)
    assert _count(app, "acme") == 3


def test_tokens_refill_with_time_up_to_the_burst(make_app: MakeApp) -> None:
    app, send = _app(make_app, tenant_enqueue_rate=10.0, tenant_enqueue_burst=2)
    acme = send.options(tenant="acme")
    acme.enqueue_many([{"n": 1}, {"n": 2}])
    with pytest.raises(QuotaExceeded) as caught:
        acme.enqueue()
    assert caught.value.retry_after is not None and caught.value.retry_after <= 0.1
    time.sleep(0.5)  # five tokens' worth; the bucket holds two
    acme.enqueue_many([{"n": 3}, {"n": 4}])
    with pytest.raises(QuotaExceeded):
        acme.enqueue()
    assert _count(app, "acme") == 4


def test_a_refused_batch_writes_nothing_and_takes_no_tokens_of_other_tenants(
    make_app: MakeApp,
) -> None:
    app, send = _app(make_app, tenant_enqueue_rate=0.01, tenant_enqueue_burst=2)
    send.options(tenant="globex").enqueue_many([{}, {}])  # globex's bucket is empty now
    batch = [
        send.options(tenant="acme").prepare(1),
        send.options(tenant="acme").prepare(2),
        send.options(tenant="globex").prepare(3),
        send.prepare(4),
    ]
    with pytest.raises(QuotaExceeded, match="'globex'") as caught:
        send.enqueue_many(batch)
    assert caught.value.tenant == "globex"
    assert _count(app) == 2  # globex's first two only
    # acme's two tokens were taken in the refused transaction, and went back with it
    send.options(tenant="acme").enqueue_many([{}, {}])
    assert _count(app, "acme") == 2


def test_tenants_have_buckets_of_their_own(make_app: MakeApp) -> None:
    app, send = _app(make_app, tenant_enqueue_rate=0.01, tenant_enqueue_burst=1)
    send.options(tenant="acme").enqueue()
    with pytest.raises(QuotaExceeded):
        send.options(tenant="acme").enqueue()
    send.options(tenant="globex").enqueue()
    assert (_count(app, "acme"), _count(app, "globex")) == (1, 1)


def test_jobs_without_a_tenant_are_never_metered(make_app: MakeApp) -> None:
    app, send = _app(make_app, tenant_enqueue_rate=0.01, tenant_enqueue_burst=1)
    send.enqueue_many([{"n": n} for n in range(50)])
    for n in range(5):
        send.enqueue(n)
    assert _count(app) == 55


def test_a_batch_bigger_than_the_burst_is_told_to_split(make_app: MakeApp) -> None:
    app, send = _app(make_app, tenant_enqueue_rate=100.0, tenant_enqueue_burst=5)
    with pytest.raises(QuotaExceeded, match="split the batch into at most 5 jobs") as caught:
        send.options(tenant="acme").enqueue_many([{"n": n} for n in range(6)])
    assert caught.value.retry_after is None
    assert _count(app) == 0
    send.options(tenant="acme").enqueue_many([{"n": n} for n in range(5)])


def test_the_store_refuses_a_demand_over_the_burst_by_itself(
    store: Store, new_job: Callable[..., NewJob]
) -> None:
    """The producer refuses such a batch before asking the store; the store's statement
    cannot pass it either (a full bucket holds `burst` tokens)."""
    jobs = [new_job(tenant="acme") for _ in range(3)]
    with pytest.raises(QuotaExceeded, match="at most 2 jobs"):
        store.enqueue(jobs, [QuotaDemand("acme", 3, 1.0, 2)])
    assert store.list_jobs(JobFilter(), 10, None).jobs == []
    assert len(store.enqueue(jobs[:2], [QuotaDemand("acme", 2, 1.0, 2)])) == 2


def test_overrides_apply_per_tenant_and_none_leaves_a_tenant_unmetered(
    make_app: MakeApp,
) -> None:
    _, send = _app(
        make_app,
        tenant_enqueue_rate=0.01,
        tenant_enqueue_burst=1,
        tenant_quotas={"big": TenantQuota(per_second=0.01, burst=20), "free": None},
    )
    send.options(tenant="big").enqueue_many([{} for _ in range(20)])
    with pytest.raises(QuotaExceeded, match=r"'big'.*burst 20"):
        send.options(tenant="big").enqueue()
    send.options(tenant="free").enqueue_many([{} for _ in range(30)])
    send.options(tenant="small").enqueue()
    with pytest.raises(QuotaExceeded, match=r"'small'.*burst 1\)"):
        send.options(tenant="small").enqueue()


def test_overrides_meter_their_tenants_without_a_default_rate(make_app: MakeApp) -> None:
    _, send = _app(make_app, tenant_quotas={"acme": TenantQuota(per_second=0.01, burst=1)})
    send.options(tenant="acme").enqueue()
    with pytest.raises(QuotaExceeded):
        send.options(tenant="acme").enqueue()
    send.options(tenant="globex").enqueue_many([{} for _ in range(10)])


def test_the_async_enqueues_are_metered_too(make_app: MakeApp) -> None:
    app, send = _app(make_app, tenant_enqueue_rate=0.01, tenant_enqueue_burst=2)
    acme = send.options(tenant="acme")

    async def go() -> None:
        await acme.enqueue_async()
        await acme.enqueue_many_async([{}])
        with pytest.raises(QuotaExceeded):
            await acme.enqueue_async()
        with pytest.raises(QuotaExceeded):
            await acme.enqueue_many_async([{}])

    asyncio.run(go())
    assert _count(app, "acme") == 2


def test_two_apps_on_one_store_share_a_tenants_bucket(make_app: MakeApp) -> None:
    first, send_first = _app(make_app, tenant_enqueue_rate=0.01, tenant_enqueue_burst=2)
    _, send_second = _app(make_app, tenant_enqueue_rate=0.01, tenant_enqueue_burst=2)
    send_first.options(tenant="acme").enqueue()
    send_second.options(tenant="acme").enqueue()
    with pytest.raises(QuotaExceeded):
        send_first.options(tenant="acme").enqueue()
    assert _count(first, "acme") == 2


def test_schedule_firings_are_not_metered(make_app: MakeApp) -> None:
    app = make_app(tenant_enqueue_rate=0.01, tenant_enqueue_burst=1)

    @app.periodic(every=timedelta(minutes=5), name="tests.beat", tenant="acme")
    def beat() -> None: ...

    beat_task = app.tasks["tests.beat"]
    beat_task.options(tenant="acme").enqueue()  # acme's bucket is empty now
    with pytest.raises(QuotaExceeded):
        beat_task.options(tenant="acme").enqueue()
    clock = testing.Clock()
    scheduler = testing.scheduler(app, clock=clock)
    fired = list(scheduler.tick())
    for _ in range(3):
        clock.advance(timedelta(minutes=5))
        fired += scheduler.tick()
    assert len(fired) >= 3 and all(job.tenant == "acme" for job in fired)
    assert app.trigger_schedule("tests.beat").tenant == "acme"


def test_a_retry_is_not_metered(make_app: MakeApp) -> None:
    app = make_app(tenant_enqueue_rate=0.01, tenant_enqueue_burst=1)

    @app.task(name="tests.bad", max_attempts=1)
    def bad() -> None:
        raise ValueError("no")

    job = bad.options(tenant="acme").enqueue()
    app.run_worker(burst=True)
    assert app.get_job(job.id).status == "failed"  # type: ignore[union-attr]
    with pytest.raises(QuotaExceeded):
        bad.options(tenant="acme").enqueue()
    assert app.retry(job.id).status == "pending"


def test_without_a_quota_the_store_keeps_no_bucket(make_app: MakeApp) -> None:
    """No quota configured: enqueues run no quota statement, so no bucket row appears."""
    app, send = _app(make_app)
    send.options(tenant="acme").enqueue_many([{} for _ in range(10)])
    _, metered_send = _app(make_app, tenant_enqueue_rate=5.0)
    metered_send.options(tenant="globex").enqueue()
    assert _bucket_tenants(app.store) == ["globex"]


def _bucket_tenants(store: Any) -> list[str]:
    table = "underway_quota_buckets"
    if hasattr(store, "schema"):  # PostgreSQL: the test's own schema
        table = f'"{store.schema}".{table}'
    with store._reading() as conn:
        rows = conn.execute(f"SELECT tenant FROM {table} ORDER BY tenant").fetchall()
    return [row[0] for row in rows]
