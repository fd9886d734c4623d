"""Property test of the whole API against its own OpenAPI schema (schemathesis, admin key):
requests generated from /openapi.json, valid and not, never get a 5xx, and every answer has a
documented status code, content type and body shape. The event stream is left out: it never
ends on its own (tests/web/test_api_events.py covers it)."""

from __future__ import annotations

import contextlib
from typing import Any

import hypothesis
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from web_support import Web

#: examples per operation: enough to reach every status of every route, short enough for CI
EXAMPLES = 20
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _checks(path: str) -> list[Any]:
    """Every check, except that /health answers 503 by design when the fleet is unwell (here:
    due jobs in a queue no worker serves); that answer is documented, and its status, content
    type and body are still checked against the schema."""
    return [c for c in CHECKS if c is not not_a_server_error] if path == "/health" else CHECKS


def cases(operation: Any, job_ids: list[str]) -> st.SearchStrategy[Any]:
    """Requests that fit the operation's schema, (where it has inputs) ones that do not, and
    for the routes of one job, requests about jobs that exist."""
    strategies = [operation.as_strategy(GenerationMode.POSITIVE)]
    # An operation without inputs has nothing to break: no negative strategy.
    with contextlib.suppress(Exception):
        strategies.append(operation.as_strategy(GenerationMode.NEGATIVE))
    if "{job_id}" in operation.path:
        strategies += [operation.as_strategy(path_parameters={"job_id": i}) for i in job_ids]
    if operation.method.upper() == "POST" and operation.path == "/api/v1/jobs":
        # Random arguments seldom fit a task's signature: one request that does, every time.
        valid = {"task": "web.add", "args": {"a": 1}}
        strategies.append(st.just(operation.Case(body=valid, media_type="application/json")))
    return st.one_of(strategies)


def test_no_request_gets_a_5xx_or_an_answer_outside_the_schema(web: Web) -> None:
    admin = web.as_admin()
    # Jobs to find, list, cancel, retry and delete: completed, failed, and pending (its queue
    # has no worker here).
    bodies = [{"task": "web.add", "args": {"a": a}} for a in range(3)] + [
        {"task": "web.boom", "args": {}},
        {"task": "web.steps", "args": {"count": 1, "pause": 0}},
    ]
    job_ids = [admin.post("/api/v1/jobs", json=body).json()["id"] for body in bodies]
    web.app.run_worker(queues=["default"], burst=True, handle_signals=False)

    schema = schemathesis.openapi.from_url(web.url + "/openapi.json").exclude(path="/api/v1/events")
    headers = {"Authorization": f"Bearer {web.admin}"}
    tried, calls, statuses = 0, 0, set()
    for result in schema.get_all_operations():
        operation = result.ok()
        tried += 1

        @hypothesis.given(case=cases(operation, job_ids))
        @hypothesis.settings(
            max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
            suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate],
        )  # fmt: skip
        def call(case: Any) -> None:
            nonlocal calls
            checks = _checks(case.operation.path)
            response = case.call_and_validate(base_url=web.url, headers=headers, checks=checks)
            calls += 1
            statuses.add(response.status_code)

        call()
    assert tried >= 18 and calls >= tried * 5
    assert {200, 201, 204, 404, 409, 422} <= statuses  # valid and invalid requests went out
