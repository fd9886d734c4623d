"""The jobs API through real HTTP: enqueue a registered task by name (its arguments checked
against the signature), list with filters and paging, get, cancel, retry, delete, and the dead
letters in bulk. Jobs as JSON exactly as DESIGN.md writes them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from web_support import Web

JOB_FIELDS = {
    "id", "task", "title", "status", "attempt", "max_attempts", "queue", "priority", "tenant",
    "args", "progress", "status_message", "payload", "result", "error", "key", "callback_url",
    "run_at", "created_at", "started_at", "completed_at", "updated_at", "cancel_requested",
    "slot",
}  # fmt: skip


def enqueue(web: Web, body: dict[str, Any], key: str | None = None) -> dict[str, Any]:
    response = web.client(key or web.admin).post("/api/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def test_an_enqueued_job_comes_back_as_json_with_every_field(web: Web) -> None:
    job = enqueue(web, {"task": "web.add", "args": {"a": 2, "b": 3}, "priority": 7,
                        "title": "two and three", "key": "sum:2+3", "max_attempts": 2})  # fmt: skip
    assert set(job) == JOB_FIELDS
    assert job["task"] == "web.add" and job["args"] == {"a": 2, "b": 3}
    assert (job["status"], job["queue"], job["priority"]) == ("pending", "math", 7)
    assert (job["title"], job["key"], job["max_attempts"]) == ("two and three", "sum:2+3", 2)
    assert job["slot"] is None  # enqueued, not fired for a schedule slot
    assert job["error"] is None and job["cancel_requested"] is False
    created = datetime.fromisoformat(job["created_at"])
    assert created.utcoffset() is not None  # ISO 8601 with its offset

    got = web.as_admin().get(f"/api/v1/jobs/{job['id']}")
    assert got.status_code == 200 and got.json()["id"] == job["id"]
    assert web.app.get_job(job["id"]) is not None  # the same job the Python API sees


def test_delay_and_run_at_set_when_the_job_is_due(web: Web) -> None:
    later = enqueue(web, {"task": "web.add", "args": {"a": 1}, "delay": 3600})
    assert datetime.fromisoformat(later["run_at"]) > datetime.now(UTC) + timedelta(minutes=50)
    at = datetime(2031, 5, 1, 12, 0, tzinfo=UTC)
    fixed = enqueue(web, {"task": "web.add", "args": {"a": 1}, "run_at": at.isoformat()})
    assert datetime.fromisoformat(fixed["run_at"]) == at
    scheduled = web.as_admin().get("/api/v1/jobs", params={"view": "scheduled"}).json()["jobs"]
    assert {j["id"] for j in scheduled} == {later["id"], fixed["id"]}


def test_an_unknown_task_is_404_and_nothing_is_stored(web: Web) -> None:
    response = web.as_admin().post("/api/v1/jobs", json={"task": "web.nope", "args": {}})
    assert response.status_code == 404
    assert "web.nope" in response.json()["detail"]
    assert web.app.list_jobs().jobs == []


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ({}, "a: missing required argument"),
        ({"a": 1, "c": 2}, "c: unexpected argument"),
        ({"a": "one"}, "a: Input should be a valid integer"),
        ({"a": 1.5}, "a: Input should be a valid integer"),
    ],
)
def test_arguments_that_do_not_fit_are_422_with_the_reason(
    web: Web, args: dict[str, Any], reason: str
) -> None:
    response = web.as_admin().post("/api/v1/jobs", json={"task": "web.add", "args": args})
    assert response.status_code == 422, response.text
    assert reason in response.json()["detail"]
    assert web.app.list_jobs().jobs == []


@pytest.mark.parametrize(
    "body",
    [
        {"args": {}},
        {"task": "web.add", "args": [1, 2]},
        {"task": "web.add", "args": {"a": 1}, "priority": "high"},
        {"task": "web.add", "args": {"a": 1}, "delay": -1},
        {"task": "web.add", "args": {"a": 1}, "run_at": "2030-01-01T00:00:00"},  # no offset
        {"task": "web.add", "args": {"a": 1}, "max_attempts": 0},
        {"task": "web.add", "args": {"a": 1}, "colour": "blue"},
        {"task": "web.add", "args": {"a": 1}, "queue": "bad\u0000queue"},
        {"task": "web.greet", "args": {"name": "nul\u0000"}},
    ],
)
def test_malformed_enqueue_requests_are_422(web: Web, body: dict[str, Any]) -> None:
    response = web.as_admin().post("/api/v1/jobs", json=body)
    assert response.status_code == 422, response.text
    assert "detail" in response.json()


def test_a_body_that_is_not_json_is_422(web: Web) -> None:
    response = web.as_admin().post(
        "/api/v1/jobs", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422


def test_list_filters_and_paging(web: Web) -> None:
    adds = [enqueue(web, {"task": "web.add", "args": {"a": i}}) for i in range(5)]
    greet = enqueue(web, {"task": "web.greet", "args": {"name": "x"}, "queue": "people",
                          "key": "greet:x", "tenant": "acme"})  # fmt: skip
    client = web.as_admin()

    def ids(**params: Any) -> list[str]:
        body = client.get("/api/v1/jobs", params=params).json()
        return [j["id"] for j in body["jobs"]]

    assert ids(task="web.add") == [j["id"] for j in reversed(adds)]
    assert ids(queue="people") == [greet["id"]] == ids(key="greet:x") == ids(tenant="acme")
    assert ids(status="pending", task="web.greet") == [greet["id"]]
    assert ids(status="failed") == []
    assert ids(created_after=adds[2]["created_at"], task="web.add") == [
        j["id"] for j in reversed(adds[2:])
    ]
    assert adds[2]["id"] not in ids(created_before=adds[2]["created_at"])

    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/v1/jobs", params=params).json()
        seen += [j["id"] for j in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [j["id"] for j in reversed([*adds, greet])]


@pytest.mark.parametrize(
    "params",
    [{"status": "sleeping"}, {"view": "later"}, {"limit": 0}, {"limit": "many"},
     {"cursor": "not-a-uuid"}, {"created_after": "yesterday"}, {"task": "a\u0000b"}],
)  # fmt: skip
def test_malformed_list_queries_are_422(web: Web, params: dict[str, Any]) -> None:
    response = web.as_admin().get("/api/v1/jobs", params=params)
    assert response.status_code == 422, response.text


def test_cancel_retry_and_delete(web: Web) -> None:
    client = web.as_admin()
    job = enqueue(web, {"task": "web.add", "args": {"a": 1}})
    path = f"/api/v1/jobs/{job['id']}"

    assert client.delete(path).status_code == 409  # pending: cancel it first
    assert client.post(f"{path}/retry").status_code == 409  # only failed or cancelled
    cancelled = client.post(f"{path}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    retried = client.post(f"{path}/retry")
    assert retried.status_code == 200 and retried.json()["status"] == "pending"
    client.post(f"{path}/cancel")
    deleted = client.delete(path)
    assert deleted.status_code == 204 and deleted.content == b""
    assert client.get(path).status_code == 404
    assert client.delete(path).status_code == 404
    assert web.app.get_job(job["id"]) is None


def test_a_running_job_is_asked_to_stop(web: Web) -> None:
    job = enqueue(web, {"task": "web.add", "args": {"a": 1}})
    [claimed] = web.app.store.claim("worker-1", None, 1)
    assert str(claimed.job.id) == job["id"]
    response = web.as_admin().post(f"/api/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["cancel_requested"]) == ("running", True)


def test_unknown_and_malformed_job_ids(web: Web) -> None:
    client = web.as_admin()
    for verb, suffix in (("GET", ""), ("POST", "/cancel"), ("POST", "/retry"), ("DELETE", "")):
        missing = client.request(verb, f"/api/v1/jobs/{uuid.uuid4()}{suffix}")
        assert missing.status_code == 404 and "detail" in missing.json()
        malformed = client.request(verb, f"/api/v1/jobs/not-an-id{suffix}")
        assert malformed.status_code == 422


def test_dead_letters_are_retried_and_deleted_in_bulk_by_filter(web: Web) -> None:
    boom = [enqueue(web, {"task": "web.boom", "args": {}}) for _ in range(3)]
    other = enqueue(web, {"task": "web.boom", "args": {}, "queue": "other"})
    web.app.run_worker(burst=True, handle_signals=False)
    assert {j.status.value for j in web.app.list_jobs().jobs} == {"failed"}
    client = web.as_admin()

    retried = client.post("/api/v1/dead-letters/retry", json={"queue": "default"})
    assert retried.status_code == 200 and retried.json() == {"count": 3}
    assert all(web.app.get_job(j["id"]).status.value == "pending" for j in boom)
    assert web.app.get_job(other["id"]).status.value == "failed"

    web.app.run_worker(burst=True, handle_signals=False)
    deleted = client.post("/api/v1/dead-letters/delete", json={"task": "web.boom"})
    assert deleted.json() == {"count": 4}
    assert web.app.list_jobs().jobs == []
    bad = client.post("/api/v1/dead-letters/delete", json={"status": "completed"})
    assert bad.status_code == 422
