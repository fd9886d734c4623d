"""Tenant isolation on underway's HTTP API (a tenant key sees only its tenant's jobs), the
seed's cron rules, and a tenant added at run time joining every per-tenant schedule at its
next slot. Runs on each store."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
import uvicorn
from docflow_support import Running

from underway import testing
from underway.web import create_api


@pytest.fixture
def api(docflow: Running) -> Iterator[str]:
    """underway's HTTP API of the DocFlow app, served on 127.0.0.1."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_api(docflow.app), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)
    sock.close()


def test_a_tenant_key_sees_and_touches_only_its_tenants_jobs(docflow: Running, api: str) -> None:
    docflow.flow.platform.upload("acme", "a", "Invoice", timedelta(days=1))
    docflow.scheduler(testing.Clock()).tick()
    docflow.settle()
    acme = {"Authorization": f"Bearer {docflow.flow.tenant_key('acme')}"}
    listed = httpx.get(f"{api}/api/v1/jobs", params={"limit": 100}, headers=acme).json()["jobs"]
    assert listed and {job["tenant"] for job in listed} == {"acme"}
    tasks = {job["task"] for job in listed}
    assert {"docflow.classify", "docflow.report_usage", "docflow.check_quota"} <= tasks
    globex_job = docflow.app.list_jobs(tenant="globex").jobs[0]
    assert httpx.get(f"{api}/api/v1/jobs/{globex_job.id}", headers=acme).status_code == 404
    cancel = httpx.post(f"{api}/api/v1/jobs/{globex_job.id}/cancel", headers=acme)
    assert cancel.status_code == 404
    assert docflow.app.get_job(globex_job.id) == globex_job  # untouched
    assert httpx.get(f"{api}/api/v1/schedules", headers=acme).status_code == 403  # admin only


def test_the_schedules_follow_the_seed_cron_rules_once_per_tenant(docflow: Running) -> None:
    rules = {info.name: (info.rule, info.tenants_from) for info in docflow.app.list_schedules()}
    lister = "documents.platform.Platform.tenant_ids"
    assert rules == {
        "docflow.classify": ("cron * * * * * (UTC)", lister),
        "docflow.retry_failed": ("cron * * * * * (UTC)", lister),
        "docflow.send_webhooks": ("cron * * * * * (UTC)", lister),
        "docflow.report_usage": ("cron 0 * * * * (UTC)", lister),
        "docflow.check_quota": ("cron 0 * * * * (UTC)", lister),
        "docflow.cleanup": ("cron 0 0 * * * (UTC)", lister),
        "docflow.suspend_tenants": ("cron 0 0 * * * (UTC)", None),
    }


def test_a_tenant_added_at_run_time_joins_at_the_next_slot(docflow: Running) -> None:
    clock = testing.Clock()
    scheduler = docflow.scheduler(clock)
    first = scheduler.tick()
    assert {job.tenant for job in first} == {"acme", "globex"}
    docflow.flow.platform.add_tenant("initech")
    clock.advance(60)
    minute = scheduler.tick()
    assert sorted((job.task, job.tenant or "") for job in minute) == sorted(
        (task, tenant)
        for task in ("docflow.classify", "docflow.retry_failed", "docflow.send_webhooks")
        for tenant in ("acme", "globex", "initech")
    )
