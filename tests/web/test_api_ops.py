"""GET /health and GET /metrics through real HTTP: what a probe and Prometheus see."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from web_support import Web

import underway.testing


def test_health_is_503_with_the_reason_while_due_jobs_have_no_worker_then_200(web: Web) -> None:
    client = web.as_admin()
    assert client.get("/health").status_code == 200
    client.post("/api/v1/jobs", json={"task": "web.add", "args": {"a": 1}})
    sick = client.get("/health")
    assert sick.status_code == 503
    body = sick.json()
    assert body["ok"] is False
    assert any("math" in reason and "worker" in reason for reason in body["reasons"]), body
    assert {c["name"]: c["ok"] for c in body["checks"]} == {
        "store": True, "workers": False, "schedules": True, "clocks": True, "horizon": True,
    }  # fmt: skip
    underway.testing.drain(web.app)
    assert client.get("/health").json() == {
        "ok": True,
        "reasons": [],
        "warnings": [],
        "checks": [
            {"name": n, "ok": True, "reason": "", "warning": ""}
            for n in ("store", "workers", "schedules", "clocks", "horizon")
        ],
    }


def test_metrics_are_prometheus_text_counting_what_the_store_saw(web: Web) -> None:
    client = web.as_admin()
    for a in range(3):
        client.post("/api/v1/jobs", json={"task": "web.add", "args": {"a": a}})
    underway.testing.drain(web.app)
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    completed = {
        s.labels["task"]: s.value
        for s in families["underway_jobs_completed"].samples
        if s.name.endswith("_total")
    }
    assert completed.get("web.add") == 3.0, completed


def test_health_and_metrics_need_an_admin_key(web: Web) -> None:
    for path in ("/health", "/metrics"):
        assert web.client().get(path).status_code == 401
        assert web.client("uw_0000000000000000_nope").get(path).status_code == 401
        assert web.as_tenant("acme").get(path).status_code == 403
