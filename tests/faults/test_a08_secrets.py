"""A08 secrets in arguments, logs and the dead letters, both stores. Catalogue: a canary
`sk_live_CANARY...` passed as a `Secret` argument, as a normal argument named `api_token`,
and inside an exception message. Pass: 0 occurrences in logs (all levels), dashboard HTML and
JSON, API responses, the DLQ export, webhook bodies, metric labels and traces; a raw database
dump holds 0 plaintext occurrences of the `Secret` argument.

Jobs of `faults.charge` (tasks_secrets.py) are enqueued from Python (a `Secret`) and over
HTTP (a plain string for the parameter annotated `Secret`), each with a callback to a receiver
on loopback; half fail with both canaries in their error, twice, and end in the dead letters.
Two worker processes log at DEBUG. Then every surface is read: the workers' logs and this
process's (DEBUG, every logger), every GET route of the API with a job's id, the event stream
from the start, /metrics, the dashboard's pages (logged in) and each job's page, the CLI's
dead-letter export (`underway jobs list --status failed --json`), the callback bodies, and a
raw dump of the database (the SQLite file and its WAL as bytes, and `iterdump`; `pg_dump` of
the schema). The `api_token` canary is a plain argument, so the dump may hold it where the
arguments are stored (nowhere else). underway has no tracing of its own to leak into.

To show the secrets went through, not that nothing did: each job that succeeded got both
values (a digest of them in its ledger line); the API shows its arguments as "[secret]" and
"[redacted]", and a failed job's error says "[redacted]" where the values were."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from abuse import Served
from harness import MakeScenario
from ledger import Event, Outcome, read
from test_a06_unauthenticated_web import dashboard_routes, fill

from callback_receiver import Receiver
from underway import Secret
from underway.callbacks.signing import new_secret
from underway.stores.postgres.store import _split_url
from underway.web import create_api

HERE = Path(__file__).resolve().parent
JOBS = 12  # half from Python, half over HTTP; half of each fail


def raw_dump(url: str) -> bytes:
    """Everything the database holds, as an attacker with the disk or a backup would."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        files = b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
        with sqlite3.connect(path) as conn:
            text = "\n".join(conn.iterdump())
        return files + text.encode()
    conninfo, schema = _split_url(url)
    dump = subprocess.run(
        ["pg_dump", "--dbname", conninfo, "--schema", schema or "public", "--data-only"],
        capture_output=True, check=True, timeout=120,
    )  # fmt: skip
    return dump.stdout


def test_a08_secrets_leave_no_trace(
    scenario: MakeScenario, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    canary = "sk_live_CANARY" + secrets.token_hex(12)
    token = "tok_CANARY" + secrets.token_hex(12)
    key = secrets.token_urlsafe(32)
    caplog.set_level(logging.DEBUG)
    with Receiver() as receiver:
        s = scenario(
            "A08 secrets in args, logs, dead letters", secret_key=key,
            webhook_secret=new_secret(), callback_allow="127.0.0.1/32",
        )  # fmt: skip
        charge = s.app.tasks["faults.charge"].options(callback_url=receiver.url)
        jobs = [
            charge.enqueue(Secret(canary), api_token=token, fail=i % 2 == 0).id
            for i in range(JOBS // 2)
        ]
        server = Served(create_api(s.app))
        _, admin = s.app.create_key(name="admin")
        api = httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {admin}"})
        for i in range(JOBS // 2):
            args = {"api_key": canary, "api_token": token, "fail": i % 2 == 0}
            answer = api.post("/api/v1/jobs", json={"task": "faults.charge", "args": args,
                                                    "callback_url": receiver.url})  # fmt: skip
            assert answer.status_code == 201, answer.text
            jobs.append(answer.json()["id"])
        for job in jobs:
            s.client.record(str(job), Outcome.OK)
        s.fault(f"{JOBS} jobs with a Secret, an api_token and both in half of their errors; "
                "workers at DEBUG")  # fmt: skip
        s.fleet.start_many(2, concurrency=4, env={"FAULTS_LOG_LEVEL": "DEBUG"})
        settled = s.settle(timeout=60)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(receiver.received()) < JOBS:
            time.sleep(0.2)
        surfaces = read_everything(s, api, server.url, admin, jobs, receiver, tmp_path)
        api.close()
        server.stop()
    surfaces["this process's logs"] = caplog.text
    dump = raw_dump(s.url)

    leaks = {name: [c for c in (canary, token) if c in text] for name, text in surfaces.items()}
    leaks = {name: found for name, found in leaks.items() if found}
    digest = hashlib.sha256(f"{canary} {token}".encode()).hexdigest()[:16]
    effects = [e for e in read(s.ledger) if e.event == Event.EFFECT]
    rows = {str(j): s.app.get_job(j) for j in jobs}
    failed = [r for r in rows.values() if r is not None and r.status.value == "failed"]
    verdict = s.verdict(allow_duplicates="none")
    (
        verdict.require("settled", settled, f"{s.raw.unfinished()} unfinished")
        .require("no canary on any surface", not leaks, f"{leaks}")
        .require("the Secret is nowhere in a raw dump", canary.encode() not in dump,
                 f"{len(dump):,} bytes dumped")
        .require("each succeeding job got both values", len(effects) == JOBS // 2
                 and {e.detail for e in effects} == {digest}, f"{[e.detail for e in effects]}")
        .require("the API shows them as [secret] and [redacted]",
                 surfaces["shown args"] == json.dumps({"api_key": "[secret]",
                                                        "api_token": "[redacted]"}),
                 surfaces["shown args"])
        .require("a failed job's error says [redacted] where they were",
                 len(failed) == JOBS // 2 and all(
                     r.error is not None and r.error.message.count("[redacted]") == 2
                     for r in failed), f"{[r.error for r in failed][:2]}")
        .require("every callback delivered", len(receiver.received()) >= JOBS,
                 f"{len(receiver.received())} bodies")
        .check()
    )  # fmt: skip


def read_everything(
    s: object, api: httpx.Client, url: str, admin: str, jobs: list[object],
    receiver: Receiver, tmp_path: Path,
) -> dict[str, str]:  # fmt: skip
    """The text of every surface a person or another system reads a job from."""
    from harness import Scenario

    assert isinstance(s, Scenario)
    found: dict[str, str] = {"worker logs": s.fleet.logs(tail=10**9)}
    ids = [str(j) for j in jobs]
    api_text = []
    for method, path in openapi_routes_of(url):
        if method != "GET" or path.endswith("/events"):
            continue
        for job in ids if "{job_id}" in path or "{id}" in path else ids[:1]:
            api_text.append(api.get(fill(path, job), params={"limit": 500}).text)
    found["API responses"] = "\n".join(api_text)
    found["dead letters (API)"] = api.get("/api/v1/jobs", params={"status": "failed"}).text
    first = api.get(f"/api/v1/jobs/{ids[0]}").json()
    found["shown args"] = json.dumps({k: first["args"][k] for k in ("api_key", "api_token")})
    with httpx.Client(base_url=url, timeout=5) as stream:
        chunks = []
        try:
            with stream.stream(
                "GET",
                "/api/v1/events",
                params={"since": s.feed_start},
                headers={"authorization": f"Bearer {admin}"},
            ) as events:
                deadline = time.monotonic() + 3
                for chunk in events.iter_text():
                    chunks.append(chunk)
                    if time.monotonic() > deadline:
                        break
        except httpx.ReadTimeout:
            pass  # the stream went quiet: all of it was read
    found["event stream"] = "".join(chunks)
    assert '"api_key":"[secret]"' in found["event stream"].replace(" ", ""), "no event read"
    found["metrics"] = api.get("/metrics").text
    with httpx.Client(base_url=url, timeout=30, follow_redirects=True) as browser:
        assert browser.post("/login", data={"key": admin}).status_code == 200
        pages = [browser.get(fill(p, ids[0])).text for m, p in dashboard_routes() if m == "GET"]
        pages += [browser.get(f"/jobs/{job}").text for job in ids]
    found["dashboard"] = "\n".join(pages)
    env = {
        **os.environ,
        "UNDERWAY_DATABASE_URL": s.url,
        "UNDERWAY_SECRET_KEY": str(s.settings["secret_key"]),
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    export = subprocess.run(
        [sys.executable, "-m", "underway", "jobs", "faultapp:app", "list", "--status", "failed",
         "--json"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert export.returncode == 0 and export.stdout.count("\n") >= 1, export.stderr
    found["DLQ export (CLI)"] = export.stdout + export.stderr
    found["webhook bodies"] = "\n".join(r.body.decode() for r in receiver.received())
    return found


def openapi_routes_of(url: str) -> list[tuple[str, str]]:
    schema = httpx.get(url + "/openapi.json").json()
    return [(m.upper(), p) for p, ops in schema["paths"].items() for m in ops]
