"""Tasks with the JSON Schemas of their arguments, queues, schedules, workers, stats and a job's
attempts, through real HTTP."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from web_support import Served, Web

import underway
import underway.testing
from underway.callbacks import new_secret
from underway.web import create_api


def test_tasks_come_with_a_json_schema_of_their_arguments(web: Web) -> None:
    tasks = {t["name"]: t for t in web.as_admin().get("/api/v1/tasks").json()}
    assert set(tasks) >= {"web.add", "web.steps", "web.boom", "web.greet", "web.hourly"}
    add = tasks["web.add"]
    assert (add["queue"], add["priority"], add["doc"]) == ("math", 1, "Adds two numbers.")
    schema = add["args_schema"]
    assert schema["type"] == "object"
    assert schema["properties"]["a"]["type"] == "integer"
    assert schema["properties"]["b"] == {"default": 0, "title": "B", "type": "integer"}
    assert schema["required"] == ["a"]
    assert schema["additionalProperties"] is False
    steps = tasks["web.steps"]["args_schema"]
    assert set(steps["properties"]) == {"count", "pause"}  # the Context is not an argument
    greet = tasks["web.greet"]
    assert greet["is_async"] is True
    tags = greet["args_schema"]["properties"]["tags"]
    assert {"type": "array", "items": {"type": "string"}} in tags["anyOf"]


def test_queues_are_listed_paused_resumed_and_limited(web: Web) -> None:
    client = web.as_admin()
    client.post("/api/v1/jobs", json={"task": "web.add", "args": {"a": 1}})
    queues = {q["name"]: q for q in client.get("/api/v1/queues").json()}
    assert queues["math"]["counts"]["pending"] == 1 and queues["math"]["paused"] is False

    paused = client.post("/api/v1/queues/math/pause").json()
    assert paused["paused"] is True
    assert [q.paused for q in web.app.queues() if q.name == "math"] == [True]
    assert client.post("/api/v1/queues/math/resume").json()["paused"] is False

    limited = client.put("/api/v1/queues/math/concurrency", json={"concurrency": 2})
    assert limited.status_code == 200 and limited.json()["concurrency"] == 2
    unlimited = client.put("/api/v1/queues/math/concurrency", json={"concurrency": None})
    assert unlimited.json()["concurrency"] is None
    bad = client.put("/api/v1/queues/math/concurrency", json={"concurrency": -1})
    assert bad.status_code == 422


def test_schedules_are_listed_paused_resumed_and_triggered(web: Web) -> None:
    client = web.as_admin()
    [hourly] = [s for s in client.get("/api/v1/schedules").json() if s["name"] == "web.hourly"]
    assert hourly["task"] == "web.hourly" and hourly["paused"] is False
    assert client.post("/api/v1/schedules/web.hourly/pause").json()["state"] == "paused"
    assert client.post("/api/v1/schedules/web.hourly/resume").json()["paused"] is False
    triggered = client.post("/api/v1/schedules/web.hourly/trigger")
    assert triggered.status_code == 201
    job = triggered.json()
    assert job["task"] == "web.hourly" and job["status"] == "pending"
    for verb in ("pause", "resume", "trigger"):
        assert client.post(f"/api/v1/schedules/nope/{verb}").status_code == 404


def test_a_schedule_per_tenant_lists_its_tenants_and_triggers_for_one(web: Web) -> None:
    hourly = web.app.get_task("web.hourly")
    web.app.schedule(hourly, every=3600, name="web.per-tenant", tenants=["acme", "globex"])
    client = web.as_admin()
    listed = {s["name"]: s for s in client.get("/api/v1/schedules").json()}
    assert listed["web.per-tenant"]["tenants"] == ["acme", "globex"]
    assert listed["web.per-tenant"]["tenants_from"] is None
    assert listed["web.hourly"]["tenants"] is None
    triggered = client.post("/api/v1/schedules/web.per-tenant/trigger", params={"tenant": "acme"})
    assert triggered.status_code == 201 and triggered.json()["tenant"] == "acme"
    refused = client.post("/api/v1/schedules/web.per-tenant/trigger")
    assert refused.status_code == 422 and "tenant=" in refused.text


def test_stats_count_jobs_by_status_task_and_queue(web: Web) -> None:
    client = web.as_admin()
    for a in range(3):
        client.post("/api/v1/jobs", json={"task": "web.add", "args": {"a": a}})
    client.post("/api/v1/jobs", json={"task": "web.boom", "args": {}})
    web.app.run_worker(burst=True, handle_signals=False)
    stats = client.get("/api/v1/stats").json()
    assert stats["total"] == 4
    assert stats["by_status"]["completed"] == 3 and stats["by_status"]["failed"] == 1
    assert stats["by_task"]["web.add"]["completed"] == 3
    assert stats["by_queue"]["math"]["completed"] == 3
    assert stats["tasks"]["web.boom"]["state"] == "failing"


def test_a_job_shows_its_attempts(web: Web) -> None:
    client = web.as_admin()
    job = client.post("/api/v1/jobs", json={"task": "web.boom", "args": {"reason": "bad"}}).json()
    assert client.get(f"/api/v1/jobs/{job['id']}/attempts").json() == []
    web.app.run_worker(burst=True, handle_signals=False)
    [attempt] = client.get(f"/api/v1/jobs/{job['id']}/attempts").json()
    assert (attempt["kind"], attempt["number"], attempt["outcome"]) == ("attempt", 1, "failed")
    assert attempt["error"]["type"] == "ValueError" and "bad" in attempt["error"]["message"]
    assert attempt["duration"] is not None and attempt["worker_id"]


def test_workers_alive_are_listed(web: Web, wait_for: Callable[..., Any]) -> None:
    client = web.as_admin()

    def listed() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = client.get("/api/v1/workers").json()
        return found

    assert listed() == []
    with underway.testing.worker(web.app, queues=["math"], concurrency=3):
        [seen] = wait_for(listed, what="the worker to show in /api/v1/workers")
        assert (seen["queues"], seen["concurrency"], seen["running"]) == (["math"], 3, 0)
        assert seen["pid"] > 0 and seen["host"]


def test_the_api_mounts_in_the_users_own_fastapi_app(web: Web) -> None:
    outer = FastAPI()

    @outer.get("/hello")
    def hello() -> dict[str, str]:
        return {"hello": "world"}

    outer.mount("/underway", create_api(web.app))
    served = Served(outer)
    try:
        headers = {"Authorization": f"Bearer {web.admin}"}
        assert httpx.get(served.url + "/hello").json() == {"hello": "world"}
        tasks = httpx.get(served.url + "/underway/api/v1/tasks", headers=headers)
        assert tasks.status_code == 200 and "web.add" in {t["name"] for t in tasks.json()}
        assert httpx.get(served.url + "/underway/api/v1/tasks").status_code == 401
        schema = httpx.get(served.url + "/underway/openapi.json").json()
        assert "/api/v1/jobs" in schema["paths"]
        assert schema["servers"] == [{"url": "/underway"}]  # clients call under the mount
    finally:
        served.stop()


def test_a_jobs_attempts_include_its_callback_deliveries(make_web: Callable[..., Web]) -> None:
    web = make_web(webhook_secret=new_secret())
    client = web.as_admin()
    body = {"task": "web.add", "args": {"a": 1}, "callback_url": "https://example.com/hook"}
    job = client.post("/api/v1/jobs", json=body).json()
    client.post(f"/api/v1/jobs/{job['id']}/cancel")  # a final state: a callback is owed
    [delivery] = client.get(f"/api/v1/jobs/{job['id']}/attempts").json()
    assert (delivery["kind"], delivery["type"]) == ("delivery", "job.cancelled")
    assert delivery["url"] == "https://example.com/hook" and delivery["job_id"] == job["id"]
    assert delivery["status"] == "pending" and delivery["id"].startswith("msg_")


def test_a_callback_url_needs_the_apps_webhook_secret(web: Web) -> None:
    body = {"task": "web.add", "args": {"a": 1}, "callback_url": "https://example.com/hook"}
    response = web.as_admin().post("/api/v1/jobs", json=body)
    assert response.status_code == 422 and "webhook_secret" in response.json()["detail"]


def test_the_last_hour_counts_finishes_per_minute(web: Web) -> None:
    client = web.as_admin()
    for a in range(3):
        client.post("/api/v1/jobs", json={"task": "web.add", "args": {"a": a}})
    client.post("/api/v1/jobs", json={"task": "web.boom", "args": {}})
    web.app.run_worker(burst=True, handle_signals=False)
    minutes = client.get("/api/v1/stats/history", params={"minutes": 60}).json()["minutes"]
    assert len(minutes) == 60
    times = [datetime.fromisoformat(m["at"]) for m in minutes]
    assert times == sorted(times) and all(t.utcoffset() == timedelta(0) for t in times)
    assert times[-1] <= datetime.now(UTC) < times[-1] + timedelta(minutes=1, seconds=5)
    assert sum(m["completed"] for m in minutes) == 3 and sum(m["failed"] for m in minutes) == 1
    assert len(client.get("/api/v1/stats/history").json()["minutes"]) == 60  # the default
    for bad in ("0", "1441", "soon"):
        response = client.get("/api/v1/stats/history", params={"minutes": bad})
        assert response.status_code == 422, response.text


def test_schedules_are_restarted_and_removed_and_the_listing_tells_liveness(web: Web) -> None:
    client = web.as_admin()
    web.app.pause_schedule("web.hourly")
    restarted = client.post("/api/v1/schedules/web.hourly/restart")
    assert restarted.status_code == 200 and restarted.json()["paused"] is False
    assert restarted.json()["schedulers_alive"] == 0
    assert restarted.json()["state"] == "no scheduler"
    # Declared in code: removing it at run time is a conflict that says what to do instead.
    refused = client.delete("/api/v1/schedules/web.hourly")
    assert refused.status_code == 409 and "paused" in refused.json()["detail"]
    web.app.schedule("web.hourly", every=60, name="web.stored", stored=True)
    [stored] = [s for s in client.get("/api/v1/schedules").json() if s["name"] == "web.stored"]
    assert (stored["stored"], stored["registered"], stored["rule"]) == (True, False, "every 1m")
    assert client.delete("/api/v1/schedules/web.stored").status_code == 204
    assert "web.stored" not in {s["name"] for s in client.get("/api/v1/schedules").json()}
    assert client.delete("/api/v1/schedules/web.stored").status_code == 404
    assert client.post("/api/v1/schedules/nope/restart").status_code == 404


def test_a_schedule_is_put_over_http_stored_updated_and_refused_clearly(web: Web) -> None:
    client = web.as_admin()
    put = client.put(
        "/api/v1/schedules/web.nightly",
        json={"task": "web.add", "cron": "0 3 * * *", "timezone": "Europe/Berlin",
              "args": {"a": 1, "b": 2}, "tenant": "acme", "catch_up": "skip"},
    )  # fmt: skip
    assert put.status_code == 200, put.text
    assert (put.json()["stored"], put.json()["task"], put.json()["tenant"]) == (
        True, "web.add", "acme",
    )  # fmt: skip
    # Python sees what HTTP put, and a scheduler started from this code would fire it.
    [info] = [s for s in web.app.list_schedules() if s.name == "web.nightly"]
    assert info.stored and "0 3 * * *" in info.rule
    every_90 = {"task": "web.add", "every": 90, "args": {"a": 1, "b": 2}}
    updated = client.put("/api/v1/schedules/web.nightly", json=every_90)
    assert updated.status_code == 200 and updated.json()["rule"] == "every 90s"
    assert updated.json()["tenant"] is None  # the body is the whole definition
    per_tenant = client.put(
        "/api/v1/schedules/web.nightly", json={**every_90, "tenants": ["acme", "globex"]}
    )
    assert per_tenant.status_code == 200 and per_tenant.json()["tenants"] == ["acme", "globex"]
    both = client.put("/api/v1/schedules/web.nightly",
                      json={**every_90, "tenant": "acme", "tenants": ["globex"]})  # fmt: skip
    assert both.status_code == 422 and "tenant" in both.text
    for body, reason in (
        ({"task": "web.nope", "every": 60}, "web.nope"),
        ({"task": "web.add", "every": 60, "cron": "* * * * *"}, "exactly one"),
        ({"task": "web.add"}, "exactly one"),
        ({"task": "web.add", "every": 60, "args": {"zzz": 1}}, "arguments"),
        ({"task": "web.add", "cron": "every tuesday"}, "cron"),
        ({"task": "web.add", "every": -5}, "every"),
        ({"task": "web.add", "every": 60, "surprise": 1}, "surprise"),
    ):
        refused = client.put("/api/v1/schedules/web.other", json=body)
        assert refused.status_code == 422, (body, refused.text)
        assert reason in refused.text, (body, refused.text)
    declared = client.put("/api/v1/schedules/web.hourly", json=every_90)
    assert declared.status_code == 409 and "pause" in declared.json()["detail"]
    assert "web.other" not in {s.name for s in web.app.list_schedules()}
    assert client.delete("/api/v1/schedules/web.nightly").status_code == 204
