"""`POST /api/v1/jobs` with a caller-chosen `"id"`: the job gets that id; an id a job already
has is 409 with one wording for every caller, so a tenant learns only that the id exists,
never anything of another tenant's job."""

from __future__ import annotations

import uuid

from web_support import Web


def test_a_chosen_id_is_the_jobs_id(web: Web) -> None:
    ident = str(uuid.uuid4())
    response = web.as_tenant("acme").post(
        "/api/v1/jobs", json={"task": "web.add", "args": {"a": 1}, "id": ident}
    )
    assert response.status_code == 201, response.text
    assert response.json()["id"] == ident
    assert web.as_tenant("acme").get(f"/api/v1/jobs/{ident}").json()["id"] == ident


def test_an_id_that_exists_is_409_with_the_same_words_whoever_asks(web: Web) -> None:
    ident = str(uuid.uuid4())
    body = {"task": "web.add", "args": {"a": 1}, "id": ident}
    assert web.as_tenant("acme").post("/api/v1/jobs", json=body).status_code == 201
    answers = [
        client.post("/api/v1/jobs", json={**body, "args": {"a": 2}})
        for client in (web.as_tenant("acme"), web.as_tenant("globex"), web.as_admin())
    ]
    assert [a.status_code for a in answers] == [409, 409, 409]
    details = {a.json()["detail"] for a in answers}
    assert details == {
        f"a job with id {ident} already exists: pick another id, or fetch the existing job "
        "by its id"
    }
    # globex learns nothing more of acme's job than that the id is taken
    assert web.as_tenant("globex").get(f"/api/v1/jobs/{ident}").status_code == 404
    stored = web.app.get_job(ident)
    assert stored is not None and stored.args == {"a": 1} and stored.tenant == "acme"


def test_an_id_that_is_not_a_uuid_is_422(web: Web) -> None:
    response = web.as_admin().post(
        "/api/v1/jobs", json={"task": "web.add", "args": {"a": 1}, "id": "job-1"}
    )
    assert response.status_code == 422
    assert web.app.list_jobs().jobs == []
