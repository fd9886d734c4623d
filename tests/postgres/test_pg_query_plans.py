"""The hot statements of the PostgreSQL store never scan the whole job table.

A schema is filled the way a busy deployment looks: a long history of finished jobs, a large
backlog of jobs scheduled for later, a few jobs due now and a few running. After ANALYZE, each
statement the store runs on a worker's hot path (claim, next_due, heartbeat, finish, rescue,
the limited-queue check) is EXPLAINed exactly as the store builds it, with the same parameters,
and its plan must not contain a sequential scan of `underway_jobs`.

Two plans are checked for each: the custom plan (parameters known, as for a statement's first
executions) and the generic plan PostgreSQL switches to once a prepared statement has run a few
times (the store's pool prepares statements after two executions).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from underway import Settings
from underway.stores import open_store
from underway.stores.fair import FIRST
from underway.stores.messages import Outcome
from underway.stores.postgres.claiming import _cursor
from underway.stores.postgres.store import PostgresStore, _queue_shape

FINISHED = 50_000
SCHEDULED = 20_000
DUE = 100
RUNNING = 200
QUEUES = ["default", "mail", "reports", "bulk", "webhooks"]

#: Types of the store's parameters for PREPARE; the others are cast in the SQL itself.
PARAM_TYPES = {
    "lease": "float8",
    "limit": "int8",
    "worker_id": "text",
    "queue": "text",
    "queues": "text[]",
    "max_rescues": "int4",
    "after_queue": "text",
    "after_tenant": "text",
    "groups": "int8",
}

#: Where a worker's fair-claiming cursor can stand: at the start, and after some group.
CURSORS = [FIRST, ("mail", "tenant-1")]


def fill(conn: psycopg.Connection[Any], schema: str, due: int = DUE) -> None:
    """Rows shaped like the store's own (as enqueue, claim and finish leave them)."""
    table = sql.SQL("{}.underway_jobs").format(sql.Identifier(schema))
    columns = sql.SQL(
        "id, task, title, args, queue, tenant, priority, status, ready, attempt, max_attempts, "
        "run_at, created_at, updated_at, started_at, completed_at, result, worker_id, lease_token, "
        "lease_expires_at"
    )
    queue = sql.SQL("(ARRAY[{}])[1 + g % {}]").format(
        sql.SQL(", ").join(sql.Literal(q) for q in QUEUES), sql.Literal(len(QUEUES))
    )
    rows = {
        # finished over the last days: completed, some failed and cancelled
        FINISHED: """
            CASE WHEN g % 50 = 0 THEN 'failed' WHEN g % 70 = 0 THEN 'cancelled'
                 ELSE 'completed' END,
            true, 1, 3, now() - g * interval '5 seconds',
            now() - g * interval '5 seconds', now() - g * interval '5 seconds' + interval '1 s',
            now() - g * interval '5 seconds', now() - g * interval '5 seconds' + interval '1 s',
            '{"ok": true}'::jsonb, NULL, NULL, NULL""",
        # scheduled for later: staged (ready = false)
        SCHEDULED: """
            'pending', false, 0, 3, now() + g * interval '1 minute', now(), now(),
            NULL, NULL, NULL, NULL, NULL, NULL""",
        # due now
        due: """
            'pending', true, 0, 3, now() - g * interval '1 millisecond', now(), now(),
            NULL, NULL, NULL, NULL, NULL, NULL""",
        # running, leased by some worker
        RUNNING: """
            'running', true, 1, 3, now() - interval '1 minute', now(), now(),
            now(), NULL, NULL, 'worker-' || (g % 4), md5(g::text), now() + interval '30 s'""",
    }
    for count, values in rows.items():
        if count == 0:
            continue
        conn.execute(
            sql.SQL(
                "INSERT INTO {table} ({columns}) "
                "SELECT gen_random_uuid(), 'tests.task' || (g % 7), 'tests.task' || (g % 7), "
                "jsonb_build_object('n', g), {queue}, "
                "CASE WHEN g % 4 = 0 THEN NULL ELSE 'tenant-' || (g % 3) END, g % 3, "
            ).format(table=table, columns=columns, queue=queue)
            + sql.SQL(values)
            + sql.SQL(" FROM generate_series(1, {}) AS g").format(sql.Literal(count))
        )
    conn.execute(sql.SQL("ANALYZE {}").format(table))


def open_filled(url: str, due: int) -> PostgresStore:
    store = open_store(Settings.load({}, database_url=url))
    assert isinstance(store, PostgresStore)
    store.migrate()
    with store.pool.connection() as conn:
        fill(conn, store.schema, due=due)
    return store


@pytest.fixture(scope="module", params=["busy", "idle"])
def filled(
    request: pytest.FixtureRequest, module_schema_url: Callable[..., str]
) -> Iterator[PostgresStore]:
    """A store on a schema filled as described above, shared by the module's tests, which
    only EXPLAIN statements and never change it. "busy": 100 jobs due now; "idle": none due
    (what every idle worker's poll looks at)."""
    store = open_filled(module_schema_url(), DUE if request.param == "busy" else 0)
    yield store
    store.close()


def explain(
    store: PostgresStore, text: str, params: dict[str, Any], generic: bool
) -> dict[str, Any]:
    """The JSON plan of one statement of the store, run as the store runs it. With `generic`,
    the plan PostgreSQL caches for a prepared statement after a few executions."""
    with psycopg.connect(store.conninfo, autocommit=True) as conn:
        if not generic:
            row = conn.execute("EXPLAIN (FORMAT JSON) " + text, params).fetchone()
        else:
            names: list[str] = []

            def placeholder(match: re.Match[str]) -> str:
                if match[1] not in names:
                    names.append(match[1])
                return f"${names.index(match[1]) + 1}"

            positional = re.sub(r"%\((\w+)\)s", placeholder, text)
            name = f"plan_{uuid.uuid4().hex[:8]}"
            types = ", ".join(PARAM_TYPES.get(n, "unknown") for n in names)
            conn.execute("SET plan_cache_mode = force_generic_plan")
            signature = f" ({types})" if names else ""
            conn.execute(f"PREPARE {name}{signature} AS {positional}")
            values = sql.SQL(", ").join(sql.Literal(params[n]) for n in names)
            execute = (
                "EXPLAIN (FORMAT JSON) EXECUTE {} ({})"
                if names
                else "EXPLAIN (FORMAT JSON) EXECUTE {}"
            )
            row = conn.execute(sql.SQL(execute).format(sql.Identifier(name), values)).fetchone()
    assert row is not None
    data = row[0] if not isinstance(row[0], str) else json.loads(row[0])
    plan: dict[str, Any] = data[0]["Plan"]
    return plan


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def describe(plan: dict[str, Any], depth: int = 0) -> str:
    """The plan as indented lines, for failure messages."""
    line = "  " * depth + plan["Node Type"]
    if "Relation Name" in plan:
        line += f" on {plan['Relation Name']}"
    if "Index Name" in plan:
        line += f" using {plan['Index Name']}"
    for key in ("Index Cond", "Filter"):
        if key in plan:
            line += f" [{key}: {plan[key]}]"
    return "\n".join([line] + [describe(c, depth + 1) for c in plan.get("Plans", [])])


def assert_no_seq_scan(store: PostgresStore, text: str, params: dict[str, Any]) -> None:
    for generic in (False, True):
        plan = explain(store, text, params, generic)
        scans = [
            n
            for n in nodes(plan)
            if n["Node Type"] == "Seq Scan" and n.get("Relation Name") == "underway_jobs"
        ]
        kind = "generic" if generic else "custom"
        assert not scans, (
            f"the {kind} plan scans all of underway_jobs:\n{describe(plan)}\n\nfor:\n{text}"
        )


QUEUE_CHOICES = [None, ["mail"], ["mail", "reports"]]


@pytest.mark.parametrize("cursor", CURSORS, ids=["from first", "from a group"])
@pytest.mark.parametrize("suspects", [False, True], ids=["claim", "suspect claim"])
@pytest.mark.parametrize("queues", QUEUE_CHOICES, ids=["all", "one", "two"])
def test_claim_uses_indexes(
    filled: PostgresStore, queues: list[str] | None, suspects: bool, cursor: tuple[str, str]
) -> None:
    store = filled
    shape, params = _queue_shape(queues)
    params.update(lease=store.settings.lease_seconds, worker_id="worker-x", limit=10)
    params.update(_cursor(cursor))
    assert_no_seq_scan(store, store.claims.statement(shape, suspects), params)


@pytest.mark.parametrize("cursor", CURSORS, ids=["from first", "from a group"])
@pytest.mark.parametrize("suspects", [False, True], ids=["claim", "suspect claim"])
def test_claim_of_a_limited_queue_uses_indexes(
    filled: PostgresStore, suspects: bool, cursor: tuple[str, str]
) -> None:
    store = filled
    assert_no_seq_scan(store, store._q["lock_limited_queue"], {"queue": "mail"})
    params = {"lease": 30.0, "worker_id": "worker-x", "queue": "mail", "limit": 3}
    params.update(_cursor(cursor))
    assert_no_seq_scan(store, store.claims.statement("limited", suspects), params)


@pytest.mark.parametrize("queues", QUEUE_CHOICES, ids=["all", "one", "two"])
def test_looking_for_suspects_uses_indexes(filled: PostgresStore, queues: list[str] | None) -> None:
    store = filled
    shape, params = _queue_shape(queues)
    assert_no_seq_scan(store, store.claims.due_sql[shape], params)


@pytest.mark.parametrize("queues", QUEUE_CHOICES, ids=["all", "one", "two"])
def test_next_due_uses_indexes(filled: PostgresStore, queues: list[str] | None) -> None:
    store = filled
    shape, params = _queue_shape(queues)
    assert_no_seq_scan(store, store.next_due_sql[shape], params)


def running_leases(store: PostgresStore, count: int) -> tuple[list[uuid.UUID], list[str]]:
    with store.pool.connection() as conn:
        rows = conn.execute(
            sql.SQL(
                "SELECT id, lease_token FROM {}.underway_jobs WHERE status = 'running' LIMIT %s"
            ).format(sql.Identifier(store.schema)),
            (count,),
        ).fetchall()
    assert len(rows) == count
    return [r[0] for r in rows], [r[1] for r in rows]


@pytest.mark.parametrize("count", [1, 10, 100])
def test_heartbeat_uses_indexes(filled: PostgresStore, count: int) -> None:
    store = filled
    ids, tokens = running_leases(store, count)
    params = {"ids": ids, "tokens": tokens, "lease": store.settings.lease_seconds}
    assert_no_seq_scan(store, store._q["heartbeat"], params)


@pytest.mark.parametrize("count", [1, 10, 100])
def test_finish_uses_indexes(filled: PostgresStore, count: int) -> None:
    store = filled
    ids, tokens = running_leases(store, count)
    params: dict[str, Any] = {
        "ids": ids,
        "tokens": tokens,
        "statuses": ["completed"] * count,
        "results": ['{"ok": true}'] * count,
        "has_error": [True] * count,
        "error_message": [None] * count,
        "error_type": [None] * count,
        "error_traceback": [None] * count,
        "refund": [0] * count,
        "retry_in": [0.0] * count,
        "report": [False] * count,
        "progress": [None] * count,
        "status_message": [None] * count,
        "payload": [None] * count,
    }
    assert_no_seq_scan(store, store._q["finish"], params)


def test_rescue_uses_indexes(filled: PostgresStore) -> None:
    store = filled
    assert_no_seq_scan(store, store._q["rescue"], {"max_rescues": store.settings.max_rescues})


def test_the_filled_schema_is_what_the_plans_were_checked_on(filled: PostgresStore) -> None:
    """Guards the fixture: the statements above ran against the intended shape of data."""
    store = filled
    stats = store.stats()
    assert stats.total >= FINISHED + SCHEDULED + RUNNING
    assert stats.scheduled == SCHEDULED
    assert stats.by_status["running"] == RUNNING
    due = store.next_due(None)
    assert due is not None
    assert (due <= 0) == (stats.by_status["pending"] > SCHEDULED)


def test_claim_and_finish_work_on_the_filled_schema(database_url: str) -> None:
    """The same statements, really run (on a schema of this test's own): a claim takes due
    jobs in order, finishing them lands, and the limited queue stays within its limit."""
    store = open_filled(database_url, DUE)
    try:
        check_claim_and_finish(store)
    finally:
        store.close()


def check_claim_and_finish(store: PostgresStore) -> None:
    due_now = store.stats().by_status["pending"] - SCHEDULED
    claimed = store.claim("worker-x", None, 10)
    assert len(claimed) == min(10, due_now)
    assert [c.job.priority for c in claimed] == sorted(
        (c.job.priority for c in claimed), reverse=True
    )
    landed = store.finish([Outcome.completed(c.job.id, c.token, "null") for c in claimed])
    assert landed == {c.job.id for c in claimed}

    mail_running = store.stats().by_queue["mail"]["running"]
    store.set_queue_concurrency("mail", mail_running + 2)
    assert len(store.claim("worker-y", ["mail"], 10)) == 2
    assert store.claim("worker-y", ["mail"], 10) == []
