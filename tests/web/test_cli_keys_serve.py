"""`underway keys APP create|list|revoke` and `underway serve`, run as commands: the secret is
printed once on the last line and works against the served API in its tenant; lists never show
secrets; revoked keys answer 401; `jobs list --tenant` leaves other tenants out;
`--insecure-no-auth` only on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from web_support import HERE, Web, free_port, start_process


def underway(web: Web, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "UNDERWAY_DATABASE_URL": web.app.settings.database_url}
    return subprocess.run(
        [sys.executable, "-m", "underway", *args],
        cwd=HERE, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_a_created_key_is_the_last_line_and_works_in_its_tenant(web: Web) -> None:
    made = underway(web, "keys", "webapp:app", "create", "--tenant", "acme", "--name", "ci")
    assert made.returncode == 0, made.stderr
    lines = made.stdout.strip().splitlines()
    secret = lines[-1]
    assert secret.startswith("uw_") and " " not in secret
    assert "acme" in made.stdout and "only this once" in made.stdout

    client = web.client(secret)
    job = client.post("/api/v1/jobs", json={"task": "web.add", "args": {"a": 1}}).json()
    assert job["tenant"] == "acme"
    [key] = [k for k in web.app.list_keys() if k.name == "ci"]
    assert (key.tenant, key.admin) == ("acme", False)
    assert key.last_used_at is not None  # the request above used it


def test_an_admin_key_by_default(web: Web) -> None:
    made = underway(web, "keys", "webapp:app", "create")
    assert "every tenant" in made.stdout
    secret = made.stdout.strip().splitlines()[-1]
    listed = web.client(secret).get("/api/v1/queues")
    assert listed.status_code == 200  # admin-only route


def test_the_list_shows_keys_but_never_their_secrets(web: Web) -> None:
    listing = underway(web, "keys", "webapp:app", "list")
    assert listing.returncode == 0, listing.stderr
    keys = web.app.list_keys()
    assert all(k.id in listing.stdout for k in keys)
    assert "(admin)" in listing.stdout and "acme" in listing.stdout
    for secret in [web.admin, *web.tenants.values()]:
        assert secret not in listing.stdout
        # uw_<id>_<random>: the random part may itself hold "_" (URL-safe base64)
        assert secret.split("_", 2)[2] not in listing.stdout
    as_json = underway(web, "keys", "webapp:app", "list", "--json", "--tenant", "globex")
    [line] = as_json.stdout.strip().splitlines()
    assert '"tenant": "globex"' in line and web.tenants["globex"] not in line
    assert "hash" not in line


def test_a_revoked_key_answers_401(web: Web) -> None:
    client = web.as_tenant("globex")
    assert client.get("/api/v1/jobs").status_code == 200
    [key] = [k for k in web.app.list_keys() if k.tenant == "globex"]
    revoked = underway(web, "keys", "webapp:app", "revoke", key.id)
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked" in revoked.stdout
    assert client.get("/api/v1/jobs").status_code == 401
    assert "revoked" in underway(web, "keys", "webapp:app", "list").stdout
    missing = underway(web, "keys", "webapp:app", "revoke", "0123456789abcdef")
    assert missing.returncode == 1 and "no API key" in missing.stderr


def test_jobs_list_by_tenant_leaves_other_tenants_out(web: Web) -> None:
    mine = web.as_tenant("acme").post("/api/v1/jobs", json={"task": "web.add", "args": {"a": 1}})
    theirs = web.as_tenant("globex").post(
        "/api/v1/jobs", json={"task": "web.add", "args": {"a": 2}}
    )
    listing = underway(web, "jobs", "webapp:app", "list", "--tenant", "acme", "--json")
    assert listing.returncode == 0, listing.stderr
    assert mine.json()["id"] in listing.stdout and theirs.json()["id"] not in listing.stdout


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com", "::"])
def test_insecure_no_auth_is_refused_off_loopback(tmp_path: Path, host: str) -> None:
    env = {**os.environ, "UNDERWAY_DATABASE_URL": f"sqlite:///{tmp_path}/refused.db"}
    refused = subprocess.run(
        [sys.executable, "-m", "underway", "serve", "webapp:app", "--host", host,
         "--insecure-no-auth"],
        cwd=HERE, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    assert "--insecure-no-auth" in refused.stderr and "loopback" in refused.stderr
    assert not (tmp_path / "refused.db").exists()  # refused before anything was opened


@pytest.mark.parametrize("insecure", [False, True])
def test_serve_answers_with_or_without_keys(web: Web, insecure: bool) -> None:
    port = free_port()
    args = ["serve", "webapp:app", "--port", str(port)] + (
        ["--insecure-no-auth"] if insecure else []
    )
    server = start_process(args, web.app.settings.database_url)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(base + "/api/v1/tasks")
                break
            except httpx.TransportError:
                assert server.poll() is None, server.communicate()[1].decode()
                assert time.monotonic() < deadline, "underway serve did not start"
                time.sleep(0.1)
        assert response.status_code == (200 if insecure else 401)
        keyed = httpx.get(base + "/api/v1/tasks", headers={"Authorization": f"Bearer {web.admin}"})
        assert keyed.status_code == 200
        assert "web.add" in {t["name"] for t in keyed.json()}
    finally:
        server.terminate()
        server.communicate(timeout=30)
