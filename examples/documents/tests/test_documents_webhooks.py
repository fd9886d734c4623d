"""Job 7: webhook events handed, a batch per minute and tenant, to underway's signed
callbacks (Standard Webhooks, HMAC-SHA256): each reaches its tenant's endpoint once, and the
receiver verifies it with the `standardwebhooks` package. Runs on each store."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from docflow_support import Running

from underway import testing


def wait_for(probe: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := probe()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return found


def test_events_reach_each_tenants_endpoint_signed_and_verified(docflow: Running) -> None:
    platform = docflow.flow.platform
    sent = {
        platform.add_event("acme", "document.classified", {"document": "d1"}): "acme",
        platform.add_event("acme", "document.expired", {"document": "d2"}): "acme",
        platform.add_event("globex", "document.classified", {"document": "d3"}): "globex",
    }
    clock = testing.Clock()
    with testing.worker(docflow.app, scheduler=False):  # it runs the jobs and sends callbacks
        docflow.scheduler(clock).tick()
        wait_for(lambda: len(docflow.receiver.verified) == 3)
    received = {
        event["data"]["result"]["id"]: (tenant, event["type"], event["data"]["result"]["event"])
        for tenant, event in docflow.receiver.verified
    }
    assert {event: tenant for event, (tenant, _, _) in received.items()} == sent
    assert {kind for _, kind, _ in received.values()} == {"job.completed"}
    assert received[next(iter(sent))][2] == "document.classified"
    for tenant, event in docflow.receiver.verified:
        assert event["data"]["tenant"] == tenant and event["data"]["task"] == (
            "docflow.deliver_webhook"
        )
    assert {e["status"] for t in ("acme", "globex") for e in platform.events(t)} == {"sent"}
    assert docflow.receiver.refused == 0


def test_a_forged_or_tampered_webhook_is_refused_by_the_receiver(docflow: Running) -> None:
    url = f"{docflow.receiver_url}/hooks/acme"
    body = b'{"type": "job.completed", "data": {}}'
    headers = {"webhook-id": "msg_forged", "webhook-timestamp": str(int(time.time())),
               "webhook-signature": "v1,AAAA"}  # fmt: skip
    assert httpx.post(url, content=body, headers=headers).status_code == 400
    assert httpx.post(url, content=body).status_code == 400
    assert docflow.receiver.verified == [] and docflow.receiver.refused == 2


def test_each_minute_hands_at_most_a_batch_of_events(docflow: Running) -> None:
    platform = docflow.flow.platform
    platform.add_tenant("initech")  # no webhook endpoint: its events are not sent
    for n in range(120):
        platform.add_event("acme", "document.classified", {"n": n})
    platform.add_event("initech", "document.classified", {})
    clock = testing.Clock()
    docflow.scheduler(clock).tick()
    testing.drain(docflow.app, queues=["default"])
    statuses = [e["status"] for e in platform.events("acme")]
    assert statuses.count("sent") == 100 and statuses.count("pending") == 20
    assert [e["status"] for e in platform.events("initech")] == ["no endpoint"]
