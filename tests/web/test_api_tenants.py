"""Auth and tenant isolation on every endpoint: no key, a bad or revoked key is 401; a tenant key
sees and touches only its own tenant's jobs (another tenant's job is 404, exactly like a
missing one), enqueues only into its tenant, and cannot see or steer what every tenant shares."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from web_support import Web

from underway import Status


def every_operation(web: Web) -> list[tuple[str, str]]:
    """(method, path) of every operation in the API's own OpenAPI schema, path parameters
    filled with a job id or a name."""
    schema = httpx.get(web.url + "/openapi.json").json()
    found = []
    for path, operations in schema["paths"].items():
        filled = path.replace("{job_id}", str(uuid.uuid4())).replace("{name}", "default")
        found += [(method.upper(), filled) for method in operations]
    return found


BODIES: dict[str, Any] = {"/api/v1/jobs": {"task": "web.add", "args": {"a": 1}},
                          "/api/v1/dead-letters/retry": {}, "/api/v1/dead-letters/delete": {},
                          "/api/v1/schedules/web.new": {"task": "web.add", "every": 60,
                                                        "args": {"a": 1}},
                          "concurrency": {"concurrency": 1}}  # fmt: skip


def call(client: httpx.Client, method: str, path: str) -> httpx.Response:
    body = BODIES.get(path, BODIES["concurrency"] if path.endswith("/concurrency") else None)
    if path.endswith("/events"):
        with client.stream(method, path) as response:
            response.read() if response.status_code != 200 else None
            return response
    return client.request(method, path, json=body if method in ("POST", "PUT") else None)


@pytest.mark.parametrize("secret", [None, "", "uw_0123456789abcdef_wrong", "not-a-key"])
def test_every_api_call_without_a_valid_key_is_401(web: Web, secret: str | None) -> None:
    operations = every_operation(web)
    assert len(operations) >= 18  # every route of the API is tried
    client = web.client(secret) if secret else web.client()
    for method, path in operations:
        response = call(client, method, path)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert "detail" in response.json()
    assert web.app.list_jobs().jobs == []  # nothing was enqueued


def test_a_revoked_key_is_401_from_then_on(web: Web) -> None:
    key, secret = web.app.create_key(tenant="acme")
    client = web.client(secret)
    assert client.get("/api/v1/jobs").status_code == 200
    web.app.revoke_key(key.id)
    assert client.get("/api/v1/jobs").status_code == 401
    assert client.post("/api/v1/jobs", json=BODIES["/api/v1/jobs"]).status_code == 401


def test_the_schema_is_public_and_names_the_bearer_scheme(web: Web) -> None:
    schema = httpx.get(web.url + "/openapi.json").json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


@pytest.fixture
def two_tenants(web: Web) -> dict[str, dict[str, Any]]:
    """One pending and one failed job of each tenant, enqueued with the tenant's own key."""
    jobs = {}
    for tenant in ("acme", "globex"):
        client = web.as_tenant(tenant)
        jobs[tenant] = client.post(
            "/api/v1/jobs", json={"task": "web.add", "args": {"a": 1}}
        ).json()
        failed = client.post("/api/v1/jobs", json={"task": "web.boom", "args": {}}).json()
        jobs[f"{tenant}-failed"] = failed
    web.app.run_worker(queues=["default"], burst=True, handle_signals=False)
    return jobs


def test_a_tenant_key_enqueues_into_its_tenant_only(web: Web) -> None:
    acme = web.as_tenant("acme")
    job = acme.post("/api/v1/jobs", json={"task": "web.add", "args": {"a": 1}}).json()
    assert job["tenant"] == "acme"
    same = acme.post("/api/v1/jobs", json={"task": "web.add", "args": {"a": 1}, "tenant": "acme"})
    assert same.status_code == 201
    other = acme.post(
        "/api/v1/jobs", json={"task": "web.add", "args": {"a": 1}, "tenant": "globex"}
    )
    assert other.status_code == 403 and "acme" in other.json()["detail"]
    assert {j.tenant for j in web.app.list_jobs().jobs} == {"acme"}
    admin = web.as_admin().post(
        "/api/v1/jobs", json={"task": "web.add", "args": {"a": 1}, "tenant": "globex"}
    )
    assert admin.json()["tenant"] == "globex"


def test_a_unique_key_held_by_another_tenant_is_409_without_showing_its_job(web: Web) -> None:
    body = {"task": "web.add", "args": {"a": 1}, "key": "shared"}
    theirs = web.as_tenant("globex").post("/api/v1/jobs", json=body).json()
    response = web.as_tenant("acme").post("/api/v1/jobs", json=body)
    assert response.status_code == 409
    assert theirs["id"] not in response.text and "globex" not in response.text


def test_lists_leave_other_tenants_out(web: Web, two_tenants: dict[str, dict[str, Any]]) -> None:
    acme = web.as_tenant("acme")
    listed = {j["id"] for j in acme.get("/api/v1/jobs").json()["jobs"]}
    assert listed == {two_tenants["acme"]["id"], two_tenants["acme-failed"]["id"]}
    assert acme.get("/api/v1/jobs", params={"tenant": "globex"}).json()["jobs"] == []
    assert len(acme.get("/api/v1/jobs", params={"tenant": "acme"}).json()["jobs"]) == 2
    everything = web.as_admin().get("/api/v1/jobs").json()["jobs"]
    assert len(everything) == 4


def test_another_tenants_job_is_404_on_every_job_route(
    web: Web, two_tenants: dict[str, dict[str, Any]]
) -> None:
    acme = web.as_tenant("acme")
    for theirs in (two_tenants["globex"], two_tenants["globex-failed"]):
        path = f"/api/v1/jobs/{theirs['id']}"
        missing = f"/api/v1/jobs/{uuid.uuid4()}"
        for method, suffix in (("GET", ""), ("GET", "/attempts"), ("POST", "/cancel"),
                               ("POST", "/retry"), ("DELETE", "")):  # fmt: skip
            response = acme.request(method, path + suffix)
            assert response.status_code == 404, (method, suffix, response.text)
            # the same answer as for a job that does not exist, but for the id in it
            absent = acme.request(method, missing + suffix).json()["detail"]
            assert response.json()["detail"].replace(theirs["id"], "X") == absent.replace(
                missing.rsplit("/", 1)[1], "X"
            )
    job = web.app.get_job(two_tenants["globex"]["id"])
    failed = web.app.get_job(two_tenants["globex-failed"]["id"])
    assert job is not None and job.status is Status.PENDING
    assert failed is not None and failed.status is Status.FAILED  # untouched


def test_a_tenants_own_job_routes_work(web: Web, two_tenants: dict[str, dict[str, Any]]) -> None:
    acme = web.as_tenant("acme")
    failed = two_tenants["acme-failed"]["id"]
    assert acme.get(f"/api/v1/jobs/{failed}").status_code == 200
    assert len(acme.get(f"/api/v1/jobs/{failed}/attempts").json()) == 1
    assert acme.post(f"/api/v1/jobs/{failed}/retry").json()["status"] == "pending"
    assert acme.post(f"/api/v1/jobs/{failed}/cancel").json()["status"] == "cancelled"
    assert acme.delete(f"/api/v1/jobs/{failed}").status_code == 204


def test_dead_letters_in_bulk_touch_only_the_tenants_own(
    web: Web, two_tenants: dict[str, dict[str, Any]]
) -> None:
    acme = web.as_tenant("acme")
    assert acme.post("/api/v1/dead-letters/retry", json={"tenant": "globex"}).json()["count"] == 0
    assert acme.post("/api/v1/dead-letters/retry", json={}).json()["count"] == 1
    web.app.run_worker(queues=["default"], burst=True, handle_signals=False)
    assert acme.post("/api/v1/dead-letters/delete", json={}).json()["count"] == 1
    globex = web.app.get_job(two_tenants["globex-failed"]["id"])
    assert globex is not None and globex.status is Status.FAILED and globex.attempt == 1


def test_stats_of_a_tenant_key_count_its_jobs_only(
    web: Web, two_tenants: dict[str, dict[str, Any]]
) -> None:
    web.as_admin().post("/api/v1/jobs", json={"task": "web.add", "args": {"a": 1}})
    mine = web.as_tenant("acme").get("/api/v1/stats").json()
    assert mine["total"] == 2 and mine["by_status"]["failed"] == 1
    # Run statistics are the tenant's too: its one failed run, not the other tenant's.
    assert set(mine["tasks"]) == {"web.boom"} and mine["tasks"]["web.boom"]["failures"] == 1
    everyone = web.as_admin().get("/api/v1/stats").json()
    assert everyone["total"] == 5 and everyone["tasks"]["web.boom"]["failures"] == 2


def test_a_tenant_key_sees_the_tasks_but_not_the_shared_controls(web: Web) -> None:
    acme = web.as_tenant("acme")
    assert acme.get("/api/v1/tasks").status_code == 200
    shared = [("GET", "/api/v1/queues"), ("POST", "/api/v1/queues/math/pause"),
              ("POST", "/api/v1/queues/math/resume"), ("PUT", "/api/v1/queues/math/concurrency"),
              ("GET", "/api/v1/schedules"), ("POST", "/api/v1/schedules/web.hourly/pause"),
              ("POST", "/api/v1/schedules/web.hourly/resume"),
              ("POST", "/api/v1/schedules/web.hourly/trigger"),
              ("POST", "/api/v1/schedules/web.hourly/restart"),
              ("PUT", "/api/v1/schedules/web.new"), ("DELETE", "/api/v1/schedules/web.hourly"),
              ("GET", "/api/v1/workers")]  # fmt: skip
    for method, path in shared:
        response = call(acme, method, path)
        assert response.status_code == 403, (method, path, response.text)
        assert "admin key" in response.json()["detail"]
    assert web.app.queues() == [] and web.app.list_jobs().jobs == []  # nothing paused or fired
    assert "web.new" not in {s.name for s in web.app.list_schedules()}  # nor put


def test_the_last_hour_of_a_tenant_key_counts_its_jobs_only(
    web: Web, two_tenants: dict[str, dict[str, Any]]
) -> None:
    def failed(client: httpx.Client, **params: str) -> int:
        answer = client.get("/api/v1/stats/history", params=params)
        assert answer.status_code == 200, answer.text
        return sum(m["failed"] for m in answer.json()["minutes"])

    assert failed(web.as_admin()) == 2
    assert failed(web.as_admin(), tenant="acme") == 1
    assert failed(web.as_tenant("acme")) == 1
    assert failed(web.as_tenant("acme"), tenant="globex") == 0  # another tenant's: nothing
