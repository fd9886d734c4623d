"""Fair claiming, on both stores: tenants take turns, so one tenant's backlog never starves
another's jobs; within a tenant, jobs still go by priority, then age
(docs/decisions/0027-fair-claiming.md)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from underway.stores import Store
from underway.stores.fair import GROUPS_PER_CLAIM
from underway.stores.messages import Claimed, NewJob

Put = Callable[..., Any]


def flood(store: Store, new_job: Callable[..., NewJob], n: int, **fields: Any) -> None:
    store.enqueue([new_job(**fields) for _ in range(n)])


def tenants_of(claimed: list[Claimed]) -> list[str | None]:
    return [c.job.tenant for c in claimed]


def claim_singly(store: Store, times: int, queues: list[str] | None = None) -> list[Claimed]:
    """`times` claims of one job each, as a worker takes them when a slot frees up."""
    out: list[Claimed] = []
    for _ in range(times):
        out += store.claim("worker-1", queues, 1)
    return out


def test_a_deep_backlog_does_not_starve_a_tenant_that_came_later(
    store: Store, put: Put, new_job: Callable[..., NewJob]
) -> None:
    flood(store, new_job, 300, tenant="acme")
    late = [put(store, tenant="globex") for _ in range(3)]
    claimed = claim_singly(store, 6)
    assert Counter(tenants_of(claimed)) == {"acme": 3, "globex": 3}
    assert [c.job.id for c in claimed if c.job.tenant == "globex"] == [j.id for j in late]


def test_one_claim_of_many_jobs_shares_them_out(
    store: Store, new_job: Callable[..., NewJob]
) -> None:
    flood(store, new_job, 200, tenant="acme")
    flood(store, new_job, 2, tenant="globex")
    flood(store, new_job, 200)  # no tenant: a group of its own
    claimed = store.claim("worker-1", None, 10)
    assert Counter(tenants_of(claimed)) == {"acme": 4, None: 4, "globex": 2}


def test_every_tenant_gets_a_turn_before_any_gets_a_second(
    store: Store, new_job: Callable[..., NewJob]
) -> None:
    tenants = [f"t{n:03}" for n in range(GROUPS_PER_CLAIM * 2 + 5)]  # more than one claim reads
    for tenant in reversed(tenants):  # the oldest jobs belong to the last tenants
        flood(store, new_job, 2, tenant=tenant)
    first = claim_singly(store, len(tenants))
    assert sorted(tenants_of(first)) == tenants  # type: ignore[type-var]
    second = claim_singly(store, len(tenants))
    assert sorted(tenants_of(second)) == tenants  # type: ignore[type-var]


def test_within_a_tenant_jobs_go_by_priority_then_age(store: Store, put: Put) -> None:
    low = put(store, tenant="acme", priority=0)
    high = put(store, tenant="acme", priority=5)
    older = put(store, tenant="acme", priority=1)
    newer = put(store, tenant="acme", priority=1)
    claimed = claim_singly(store, 4)
    assert [c.job.id for c in claimed] == [high.id, older.id, newer.id, low.id]


def test_a_tenants_queues_merge_by_priority(store: Store, put: Put) -> None:
    first = put(store, tenant="acme", queue="q1", priority=0)
    urgent = put(store, tenant="acme", queue="q2", priority=9)
    claimed = store.claim("worker-1", ["q1", "q2"], 2)
    assert [c.job.id for c in claimed] == [urgent.id, first.id]


def test_a_worker_takes_turns_only_in_its_own_queues(
    store: Store, put: Put, new_job: Callable[..., NewJob]
) -> None:
    flood(store, new_job, 100, tenant="acme", queue="bulk")
    mine = [put(store, tenant=t, queue="mail") for t in ("acme", "globex", "acme", "globex")]
    claimed = claim_singly(store, 6, ["mail"])
    assert {c.job.queue for c in claimed} == {"mail"}
    assert sorted(c.job.id for c in claimed) == sorted(j.id for j in mine)


def test_jobs_that_became_due_take_their_turn(
    store: Store, put: Put, new_job: Callable[..., NewJob]
) -> None:
    flood(store, new_job, 100, tenant="acme")
    delayed = put(store, tenant="globex", delay=0.2)
    assert "globex" not in tenants_of(claim_singly(store, 4))  # not due yet
    time.sleep(0.3)
    assert delayed.id in [c.job.id for c in claim_singly(store, 2)]


def test_a_limited_queue_takes_turns_within_its_limit(
    store: Store, put: Put, new_job: Callable[..., NewJob]
) -> None:
    store.set_queue_concurrency("capped", 3)
    flood(store, new_job, 50, tenant="acme", queue="capped")
    put(store, tenant="globex", queue="capped")
    claimed = store.claim("worker-1", None, 10)
    assert len(claimed) == 3
    assert "globex" in tenants_of(claimed)


def test_a_paused_queue_gives_no_turns(store: Store, put: Put) -> None:
    put(store, tenant="acme", queue="held")
    kept = put(store, tenant="globex")
    store.set_queue_paused("held", True)
    assert [c.job.id for c in store.claim("worker-1", None, 5)] == [kept.id]


def test_two_workers_share_a_tenants_backlog_without_taking_a_job_twice(
    make_store: Callable[..., Store], new_job: Callable[..., NewJob]
) -> None:
    one, two = make_store(), make_store()
    flood(one, new_job, 40, tenant="acme")
    flood(one, new_job, 40, tenant="globex")
    taken: list[Claimed] = []
    while batch := one.claim("w1", None, 3) + two.claim("w2", None, 3):
        taken += batch
    assert len(taken) == len({c.job.id for c in taken}) == 80
