"""Property test of the whole API against its own OpenAPI schema (schemathesis, admin key):
requests generated from /openapi.json, valid and not, never get a 5xx, and every answer has a
documented status code, content type and body shape. The event stream is left out: it never
ends on its own (tests/web/test_api_events.py covers it)."""

from __future__ import annotations

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


def cases(operation: Any) -> st.SearchStrategy[Any]:
    """Requests that fit the operation's schema, and (where it has inputs) ones that do not."""
    positive = operation.as_strategy(GenerationMode.POSITIVE)
    try:
        return st.one_of(positive, operation.as_strategy(GenerationMode.NEGATIVE))
    except Exception:
        return positive


def test_no_request_gets_a_5xx_or_an_answer_outside_the_schema(web: Web) -> None:
    admin = web.as_admin()
    for a in range(3):  # some jobs to find, list, cancel and retry
        admin.post("/api/v1/jobs", json={"task": "web.add", "args": {"a": a}})
    admin.post("/api/v1/jobs", json={"task": "web.boom", "args": {}})
    web.app.run_worker(queues=["default"], burst=True, handle_signals=False)

    schema = schemathesis.openapi.from_url(web.url + "/openapi.json").exclude(path="/api/v1/events")
    headers = {"Authorization": f"Bearer {web.admin}"}
    tried, calls, statuses = 0, 0, set()
    for result in schema.get_all_operations():
        operation = result.ok()
        tried += 1

        @hypothesis.given(case=cases(operation))
        @hypothesis.settings(
            max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
            suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate],
        )  # fmt: skip
        def call(case: Any) -> None:
            nonlocal calls
            response = case.call_and_validate(base_url=web.url, headers=headers, checks=CHECKS)
            calls += 1
            statuses.add(response.status_code)

        call()
    assert tried >= 18 and calls >= tried * 5
    assert {200, 201, 404, 422} <= statuses  # valid and invalid requests both went out
