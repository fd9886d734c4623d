"""A01 malformed payloads, both stores. Catalogue: schemathesis (OpenAPI) and Hypothesis JSON,
100k cases: invalid JSON, wrong types, 10k-deep nesting, 1e309, NaN/Infinity, duplicate keys,
bad UTF-8, `\\u0000`, extreme priorities and dates, naive timestamps. Pass: 0 x 5xx; 0 rows
inserted for rejected requests; workers never crash on rows from older or newer producers.

Three parts, all against the web tests' App served over real HTTP with an admin key:

1. the catalogue's corpus, one request each (CORPUS below);
2. Hypothesis: enqueue requests whose every field is drawn from JSON of any shape, and bodies
   that are any JSON at all: 1,000 cases in CI, the catalogue's 100,000 with `--full` (the
   schemathesis run over the whole schema is `tests/web/test_api_schemathesis.py`);
3. rows a worker of this version did not write: jobs enqueued by an older producer whose task
   had another signature, and rows whose stored arguments are no JSON object (an array, a
   string, null; on SQLite, text that is no JSON at all). A worker drains them all without
   crashing: each ends failed with its reason at its first attempt, and an ordinary job
   beside them completes.

Every answer is checked: never 5xx, never a dropped connection; rows are counted before and
after, and must grow by the number of 201s exactly. underway has no "incompatible_payload"
parking state: such a job fails NotRunnable, in the dead letters with the reason."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
from abuse import abuse_verdict, client, row_count, served
from harness import RawStore, Sizes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web_support import Web

import underway
from underway import testing

ADD = '{"task": "web.add", "args": {"a": 1}'  # an enqueue's start, closed by each case
#: the catalogue's cases: name -> body (bytes as sent, with content-type application/json)
CORPUS: dict[str, bytes] = {
    "truncated JSON": ADD.encode(),
    "empty body": b"",
    "single quotes": b"{'task': 'web.add'}",
    "a task that is a number": b'{"task": 5}',
    "args that are a list": b'{"task": "web.add", "args": [1]}',
    "an argument of the wrong type": b'{"task": "web.add", "args": {"a": "x"}}',
    "a priority that is text": (ADD + ', "priority": "high"}').encode(),
    "10k-deep nesting": b'{"task": "web.add", "args": {"a": '
    + b"[" * 10_000
    + b"]" * 10_000
    + b"}}",
    "100k-deep nesting": b'{"task": "web.add", "args": {"a": '
    + b"[" * 100_000
    + b"]" * 100_000
    + b"}}",
    "990-deep nesting": b'{"task": "web.add", "args": {"a": ' + b"[" * 990 + b"]" * 990 + b"}}",
    "1e309": b'{"task": "web.add", "args": {"a": 1e309}}',
    "NaN": b'{"task": "web.add", "args": {"a": NaN}}',
    "-Infinity": b'{"task": "web.add", "args": {"a": -Infinity}}',
    "a priority of 1e309": (ADD + ', "priority": 1e309}').encode(),
    "a delay of NaN": (ADD + ', "delay": NaN}').encode(),
    "duplicate keys": b'{"task": "web.add", "args": {"a": 1, "a": 2}}',
    "bad UTF-8": (ADD + ', "title": "').encode() + b"\xff\xfe" + b'"}',
    "NUL in a queue": (ADD + ', "queue": "a\\u0000b"}').encode(),
    "NUL in an argument": b'{"task": "web.greet", "args": {"name": "a\\u0000b"}}',
    "a lone surrogate": b'{"task": "web.greet", "args": {"name": "\\ud800"}}',
    "priority 2**31": (ADD + ', "priority": 2147483648}').encode(),
    "priority -2**31 - 1": (ADD + ', "priority": -2147483649}').encode(),
    "priority 10**30": (ADD + ', "priority": ' + "1" + "0" * 30 + "}").encode(),
    "priority 1.5": (ADD + ', "priority": 1.5}').encode(),
    "run_at in the year 10000": (ADD + ', "run_at": "10000-01-01T00:00:00Z"}').encode(),
    "run_at in the year 1": (ADD + ', "run_at": "0001-01-01T00:00:00Z"}').encode(),
    "run_at in month 13": (ADD + ', "run_at": "2026-13-45T00:00:00Z"}').encode(),
    "a naive run_at": (ADD + ', "run_at": "2026-12-07T10:00:00"}').encode(),
    "a delay of 1e20": (ADD + ', "delay": 1e20}').encode(),
    "a negative delay": (ADD + ', "delay": -5}').encode(),
    "max_attempts -1": (ADD + ', "max_attempts": -1}').encode(),
    "a 5,000-digit integer": b'{"task": "web.add", "args": {"a": 1' + b"0" * 5000 + b"}}",
    "a top-level array": b"[1, 2]",
    "a top-level null": b"null",
    "an id that is no UUID": (ADD + ', "id": "nope"}').encode(),
    "a 100 KB key": (ADD + ', "key": "' + "k" * 100_000 + '"}').encode(),
}

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12,
)  # fmt: skip
FIELDS = ("task", "args", "queue", "priority", "delay", "run_at", "key", "tenant", "title",
          "max_attempts", "id", "callback_url", "status_message")  # fmt: skip
ENQUEUES = st.fixed_dictionaries(
    {"task": st.sampled_from(["web.add", "web.greet", "web.steps"]) | st.text(max_size=12)},
    optional={name: JSON_VALUES for name in FIELDS[1:]},
)


def answer(c: httpx.Client, body: bytes) -> int | str:
    """The status of one enqueue; a dropped connection or a timeout as its name."""
    try:
        return c.post(
            "/api/v1/jobs", content=body, headers={"content-type": "application/json"}
        ).status_code
    except httpx.HTTPError as exc:
        return type(exc).__name__


def corpus(c: httpx.Client) -> dict[str, int | str]:
    return {name: answer(c, body) for name, body in CORPUS.items()}


def fuzz(c: httpx.Client, cases: int) -> list[int | str]:
    """Hypothesis: enqueue-shaped requests of any field values, and any JSON as the body."""
    seen: list[int | str] = []

    @given(st.one_of(ENQUEUES, JSON_VALUES))
    @settings(max_examples=cases, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    def one(body: Any) -> None:
        text = json.dumps(body, allow_nan=True)  # NaN and Infinity as Python writes them
        seen.append(answer(c, text.encode()))

    one()
    return seen


def foreign_rows(web: Web, make_app: Callable[..., underway.App]) -> tuple[list[str], int]:
    """Rows of an older producer and rows with arguments that are no JSON object: each must
    fail at its first attempt with its reason, beside an ordinary job that completes. The
    failures found, and how many jobs took part."""
    url = web.app.settings.database_url
    assert url is not None
    older = make_app()  # another producer on the same store

    @older.task(name="web.add", queue="math")
    def add(x: int) -> int:  # the signature before `a` and `b`
        return x

    odd = [add.enqueue(x=1).id]
    raw = RawStore(url)
    shapes = ["[1, 2]", '"text"', "null"] + ([] if raw.is_postgres else ["{not json"])
    cast = "::jsonb" if raw.is_postgres else ""
    for shape in shapes:
        job = web.app.get_task("web.add").enqueue(a=1)
        literal = shape.replace("'", "''").replace("{", "{{").replace("}", "}}")  # format()
        raw._query(f"UPDATE {{jobs}} SET args = '{literal}'{cast} WHERE id = "
                   f"'{job.id}' RETURNING id")  # fmt: skip
        odd.append(job.id)
    fine = web.app.get_task("web.add").enqueue(a=2, b=3)
    testing.drain(web.app)  # a crash of the worker on any of them raises here
    wrong = []
    for job_id in odd:
        job = web.app.get_job(job_id)
        if job is None or job.status.value != "failed" or job.attempt != 1 or job.error is None:
            wrong.append(f"{job_id}: {job and (job.status, job.attempt, job.error)}")
    done = web.app.get_job(fine.id)
    if done is None or done.status.value != "completed" or done.result != 5:
        wrong.append(f"the ordinary job: {done and (done.status, done.result)}")
    older.close()
    return wrong, len(odd) + 1


def test_a01_malformed_payloads_are_4xx_and_write_nothing(
    make_app: Callable[..., underway.App], store_kind: str, sizes: Sizes
) -> None:
    cases = sizes.pick(1_000, 100_000)
    with served(make_app) as web:
        c = client(web, web.admin)
        before = row_count(web)
        named = corpus(c)
        fuzzed = fuzz(c, cases)
        inserted = row_count(web) - before
        rows, foreign = foreign_rows(web, make_app)
    answers = list(named.values()) + fuzzed
    bad = {n: a for n, a in named.items() if not isinstance(a, int) or a >= 500}
    bad_fuzz = [a for a in fuzzed if not isinstance(a, int) or a >= 500]
    created = sum(a == 201 for a in answers)
    (
        abuse_verdict("A01 malformed payloads", store_kind, created + foreign, [
            f"{len(CORPUS)} catalogue cases; {len(fuzzed)} Hypothesis cases; "
            "rows of an older producer and arguments that are no JSON object",
        ])
        .require("no 5xx, no dropped connection (catalogue cases)", not bad, f"{bad}")
        .require("no 5xx, no dropped connection (Hypothesis)", not bad_fuzz,
                 f"{len(bad_fuzz)} of {len(fuzzed)}: {sorted(set(map(str, bad_fuzz)))}")
        .require("rows grow by the 201s exactly", inserted == created,
                 f"{inserted} rows for {created} answers 201, of {len(answers)}")
        .require("foreign rows fail with their reason, the worker goes on", not rows,
                 f"{rows[:3]}")
        .check()
    )  # fmt: skip
