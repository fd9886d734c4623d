"""Tenant quotas over real HTTP: an enqueue over its tenant's quota answers 429 with a
Retry-After header (whole seconds, at least 1) and a JSON detail; a tenant key's enqueues go
into its tenant and are metered there; a batch of one job never passes a burst below 1."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
from web_support import Web

from underway import TenantQuota

BODY = {"task": "web.add", "args": {"a": 1}}


def test_over_quota_is_429_with_retry_after_and_a_detail(make_web: Callable[..., Web]) -> None:
    web = make_web(tenant_enqueue_rate=0.5, tenant_enqueue_burst=2)
    acme = web.as_tenant("acme")
    for _ in range(2):
        assert acme.post("/api/v1/jobs", json=BODY).status_code == 201
    refused = acme.post("/api/v1/jobs", json=BODY)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "2"  # about 2 s at 0.5/s, rounded up
    assert "tenant 'acme' is over its enqueue quota" in refused.json()["detail"]
    jobs = web.as_admin().get("/api/v1/jobs").json()["jobs"]
    assert [job["tenant"] for job in jobs] == ["acme", "acme"]


def test_a_tenant_key_is_metered_in_its_own_tenant(make_web: Callable[..., Web]) -> None:
    web = make_web(tenant_quotas={"acme": TenantQuota(per_second=0.01, burst=1)})
    acme, globex, admin = web.as_tenant("acme"), web.as_tenant("globex"), web.as_admin()
    assert acme.post("/api/v1/jobs", json=BODY).json()["tenant"] == "acme"
    refused = acme.post("/api/v1/jobs", json=BODY)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    # an admin enqueueing into acme takes from the same bucket; other tenants are not metered
    assert admin.post("/api/v1/jobs", json=BODY | {"tenant": "acme"}).status_code == 429
    assert all(globex.post("/api/v1/jobs", json=BODY).status_code == 201 for _ in range(3))
    assert admin.post("/api/v1/jobs", json=BODY).status_code == 201  # no tenant


def test_the_schema_lists_429_for_the_enqueue(web: Web) -> None:
    schema = httpx.get(web.url + "/openapi.json").json()
    assert "429" in schema["paths"]["/api/v1/jobs"]["post"]["responses"]


def test_a_refused_tenant_is_refused_early_and_admitted_again_once_refilled(
    make_web: Callable[..., Web],
) -> None:
    """After the store's refusal the server answers 429 without routing the request (so a
    body it would reject as 422 gets 429 too), and takes the tenant's jobs again as soon as
    the bucket can have refilled: the early refusal never refuses what the store would take."""
    web = make_web(tenant_quotas={"acme": TenantQuota(per_second=4, burst=1)})
    acme = web.as_tenant("acme")
    assert acme.post("/api/v1/jobs", json=BODY).status_code == 201
    assert acme.post("/api/v1/jobs", json=BODY).status_code == 429  # the store's refusal
    early = acme.post("/api/v1/jobs", json={"task": "web.add", "args": {"a": "not a number"}})
    assert early.status_code == 429 and int(early.headers["Retry-After"]) == 1
    time.sleep(0.3)  # a quarter of a second refills one job's token
    assert acme.post("/api/v1/jobs", json=BODY).status_code == 201
    jobs = web.as_admin().get("/api/v1/jobs", params={"tenant": "acme"}).json()["jobs"]
    assert len(jobs) == 2


def test_a_new_keys_concurrent_enqueues_take_turns_and_all_land(
    make_web: Callable[..., Web],
) -> None:
    """A key the server has not seen yet sends many enqueues at once (a flood's first
    requests): they take turns in its lanes, and every one is answered as without them."""
    web = make_web(tenant_quotas={"acme": TenantQuota(per_second=0.01, burst=12)})
    key = web.tenants["acme"]

    def post(n: int) -> int:
        with httpx.Client(base_url=web.url, headers={"Authorization": f"Bearer {key}"},
                          timeout=30) as client:  # fmt: skip
            answer = client.post("/api/v1/jobs", json={"task": "web.add", "args": {"a": n}})
            return answer.status_code

    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(post, range(16)))
    assert sorted(codes) == [201] * 12 + [429] * 4
    jobs = web.as_admin().get("/api/v1/jobs", params={"tenant": "acme"}).json()["jobs"]
    assert len(jobs) == 12
