"""The event stream (/api/v1/events) through real HTTP: a job run by a worker in another process
is seen step by step to its end; a client that reconnects with Last-Event-ID misses nothing; a
tenant key's stream carries only its tenant's jobs; the stream ends when the server stops."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from web_support import Event, Web, free_port, sse_events, start_process


@pytest.fixture
def worker_process(web: Web) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Worker processes a test starts (`python -m underway worker webapp:app`), stopped at
    the end."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


def start_worker(web: Web, started: list[subprocess.Popen[bytes]]) -> None:
    started.append(
        start_process(["worker", "webapp:app", "--burst"], web.app.settings.database_url)
    )


def follow(web: Web, key: str, until: Any, **params: Any) -> list[Event]:
    """Read the stream (from the feed's head now, unless `Last-Event-ID` is given in
    `params["headers"]`) until `until(event)` is true; returns the events read."""
    headers = params.pop("headers", None) or {"Last-Event-ID": web.app.store.change_head()}
    seen = []
    with web.client(key, timeout=httpx.Timeout(30)).stream(
        "GET", "/api/v1/events", params=params, headers=headers
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for event in sse_events(response):
            seen.append(event)
            if until(event):
                break
    return seen


def finished(event: Event) -> bool:
    return bool(event.json()["status"] in ("completed", "failed", "cancelled"))


def test_a_job_run_by_another_process_is_seen_step_by_step_to_its_end(
    web: Web, worker_process: list[subprocess.Popen[bytes]]
) -> None:
    head = web.app.store.change_head()
    job = (
        web.as_admin().post("/api/v1/jobs", json={"task": "web.steps", "args": {"count": 4}}).json()
    )
    start_worker(web, worker_process)
    events = follow(web, web.admin, finished, job=job["id"], headers={"Last-Event-ID": head})

    assert {e.event for e in events} == {"job"}
    assert all(e.id for e in events) and len({e.id for e in events}) == len(events)
    jobs = [e.json() for e in events]
    assert {j["id"] for j in jobs} == {job["id"]}
    assert jobs[0]["status"] == "pending" and jobs[1]["status"] == "running"
    steps = [(j["progress"], j["status_message"]) for j in jobs if j["progress"] is not None]
    assert [s for i, s in enumerate(steps) if i == 0 or s != steps[i - 1]] == [
        (0.25, "step 1 of 4"), (0.5, "step 2 of 4"), (0.75, "step 3 of 4"), (1.0, "step 4 of 4")
    ]  # fmt: skip
    assert (jobs[-1]["status"], jobs[-1]["result"]) == ("completed", "done")


def test_a_client_that_reconnects_with_last_event_id_misses_nothing(
    web: Web, worker_process: list[subprocess.Popen[bytes]]
) -> None:
    head = web.app.store.change_head()
    job = (
        web.as_admin().post("/api/v1/jobs", json={"task": "web.steps", "args": {"count": 5}}).json()
    )
    start_worker(web, worker_process)

    def running(event: Event) -> bool:
        return bool(event.json()["status"] == "running")

    first = follow(web, web.admin, running, job=job["id"], headers={"Last-Event-ID": head})
    rest = follow(web, web.admin, finished, job=job["id"], headers={"Last-Event-ID": first[-1].id})
    whole = follow(web, web.admin, finished, job=job["id"], headers={"Last-Event-ID": head})
    assert [e.id for e in first + rest] == [e.id for e in whole]
    assert [e.data for e in first + rest] == [e.data for e in whole]
    assert whole[-1].json()["status"] == "completed"


def test_a_tenant_keys_stream_carries_only_its_tenants_jobs(web: Web) -> None:
    head = web.app.store.change_head()
    admin = web.as_admin()
    theirs = admin.post("/api/v1/jobs", json={"task": "web.add", "args": {"a": 1},
                                              "tenant": "globex"}).json()  # fmt: skip
    mine = admin.post("/api/v1/jobs", json={"task": "web.add", "args": {"a": 2},
                                            "tenant": "acme"}).json()  # fmt: skip
    admin.post(f"/api/v1/jobs/{theirs['id']}/cancel")
    admin.post(f"/api/v1/jobs/{mine['id']}/cancel")

    def cancelled_mine(event: Event) -> bool:
        job = event.json()
        return bool(job["id"] == mine["id"] and job["status"] == "cancelled")

    acme = web.tenants["acme"]
    events = follow(web, acme, cancelled_mine, headers={"Last-Event-ID": head})
    assert {e.json()["id"] for e in events} == {mine["id"]}
    # Asking for another tenant's jobs, or for another tenant's job, yields none of them:
    for params in ({"tenant": "globex"}, {"job": theirs["id"]}):
        with (
            web.client(acme, timeout=httpx.Timeout(30, read=1.5)).stream(
                "GET", "/api/v1/events", params=params, headers={"Last-Event-ID": head}
            ) as response,
            pytest.raises(httpx.ReadTimeout),
        ):
            next(sse_events(response))
    everything = follow(web, web.admin, cancelled_mine, headers={"Last-Event-ID": head})
    assert {e.json()["id"] for e in everything} == {theirs["id"], mine["id"]}


def test_a_cursor_the_feed_does_not_know_ends_the_stream_with_an_error(web: Web) -> None:
    with web.as_admin().stream(
        "GET", "/api/v1/events", headers={"Last-Event-ID": "not-a-cursor"}
    ) as response:
        events = list(sse_events(response))
    assert [e.event for e in events] == ["error"]
    assert "cursor" in events[0].json()["detail"]


def test_the_stream_ends_when_the_server_shuts_down(web: Web) -> None:
    port = free_port()
    url = web.app.settings.database_url
    server = start_process(["serve", "webapp:app", "--port", str(port)], url)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(base + "/openapi.json")
                break
            except httpx.TransportError:
                assert server.poll() is None, server.communicate()[1].decode()
                assert time.monotonic() < deadline, "underway serve did not start"
                time.sleep(0.1)
        _, secret = web.app.create_key()
        headers = {"Authorization": f"Bearer {secret}"}
        with httpx.stream("GET", base + "/api/v1/events", headers=headers, timeout=30) as stream:
            assert stream.status_code == 200
            server.send_signal(signal.SIGTERM)
            try:
                events = list(sse_events(stream))
            except httpx.RemoteProtocolError as exc:  # cut off: say what the server said
                server.wait(30)
                pytest.fail(f"the stream was cut off ({exc}); server:\n{_stderr(server)}")
            assert events == []  # the stream ends, no error
        # uvicorn shuts down gracefully, then re-raises the signal it caught
        assert server.wait(30) in (0, -signal.SIGTERM)
        assert b"Finished server process" in server.communicate()[1]
    finally:
        if server.poll() is None:
            server.kill()
        server.communicate()


def test_a_stream_from_now_carries_every_change_made_once_it_answered(web: Web) -> None:
    client = web.as_admin()
    with web.client(web.admin).stream("GET", "/api/v1/events", params={"task": "web.add"}) as s:
        assert s.status_code == 200  # the headers are here: "now" is fixed
        job = client.post("/api/v1/jobs", json={"task": "web.add", "args": {"a": 1}}).json()
        client.post(f"/api/v1/jobs/{job['id']}/cancel")
        events = sse_events(s)
        seen = [next(events).json(), next(events).json()]
    assert [(j["id"], j["status"]) for j in seen] == [
        (job["id"], "pending"),
        (job["id"], "cancelled"),
    ]


def _stderr(server: subprocess.Popen[bytes]) -> str:
    _, err = server.communicate(timeout=30)
    return err.decode(errors="replace") if err else ""
