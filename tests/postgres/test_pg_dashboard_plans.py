"""The dashboard's reads on PostgreSQL never walk all of the job table (decision 0016): stats
read the tallies and the unfinished jobs, run statistics each name's runs index, and every
list filter an index. Checked on the filled schema of test_pg_query_plans, with its backlog
of scheduled jobs cut to 1% (the shape the dashboard is held to: a million finished jobs, ten
thousand pending; with more unfinished than that, counting them all is what stats costs),
custom and generic plans both, as the store builds each statement."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg import sql
from test_pg_query_plans import PARAM_TYPES, describe, explain, nodes, open_filled

from underway.model import View
from underway.stores.messages import JobFilter
from underway.stores.postgres.store import PostgresStore
from underway.stores.sql import list_filters

PARAM_TYPES.update(tenant="text", status="text", task="text", key="text", since="int8",
                   created_after="timestamptz", created_before="timestamptz")  # fmt: skip


@pytest.fixture(scope="module")
def filled(module_schema_url: Callable[..., str]) -> Iterator[PostgresStore]:
    store = open_filled(module_schema_url(), 100)
    with store.pool.connection() as conn:
        table = sql.SQL("{}.underway_jobs").format(sql.Identifier(store.schema))
        conn.execute(sql.SQL("DELETE FROM {} WHERE NOT ready AND random() < 0.98").format(table))
        conn.execute(sql.SQL("ANALYZE {}").format(table))
    yield store
    store.close()


def assert_reads_few(store: PostgresStore, text: str, params: dict[str, Any]) -> None:
    """No sequential scan of underway_jobs, and no walk of the pruning index (completed_at),
    which serves the order of the latest runs only by reading every finished job."""
    for generic in (False, True):
        plan = explain(store, text, params, generic)
        bad = [n for n in nodes(plan)
               if (n["Node Type"] == "Seq Scan" and n.get("Relation Name") == "underway_jobs")
               or n.get("Index Name") == "underway_jobs_finished"]  # fmt: skip
        kind = "generic" if generic else "custom"
        assert not bad, f"the {kind} plan reads all finished jobs:\n{describe(plan)}\n\n{text}"


@pytest.mark.parametrize("scoped", [False, True], ids=["all", "tenant"])
def test_stats_read_the_tallies_and_the_unfinished_jobs(
    filled: PostgresStore, scoped: bool
) -> None:
    params = {"tenant": "acme"} if scoped else {}
    for text in filled._stats[scoped]:
        assert_reads_few(filled, text, params)


@pytest.mark.parametrize("group", ["task", "schedule"])
@pytest.mark.parametrize("scoped", [False, True], ids=["all", "tenant"])
def test_run_statistics_read_each_names_runs_index(
    filled: PostgresStore, group: str, scoped: bool
) -> None:
    params = {"tenant": "acme"} if scoped else {}
    statements = filled._runs[group, scoped]
    for text in statements.values():
        assert_reads_few(filled, text, params)
    if not scoped:  # a tenant's runs may be found through the tenant's index as well
        plan = explain(filled, statements["run_recent"], params, generic=True)
        used = {n.get("Index Name") for n in nodes(plan)}
        assert f"underway_jobs_{group}_runs" in used, describe(plan)


def test_the_history_reads_the_minutes(filled: PostgresStore) -> None:
    for scoped, text in filled._history.items():
        assert_reads_few(filled, text, {"since": 0, **({"tenant": "acme"} if scoped else {})})


NOW = datetime.now(UTC)
FILTERS = {
    "status": JobFilter(status="failed"), "view scheduled": JobFilter(view=View.SCHEDULED),
    "view retrying": JobFilter(view=View.RETRYING), "task": JobFilter(task="tests.task3"),
    "queue": JobFilter(queue="mail"), "tenant": JobFilter(tenant="acme"),
    "key": JobFilter(key="order-1"), "failed of a task": JobFilter(status="failed", task="x"),
    "failed of a queue": JobFilter(status="failed", queue="mail"),
    "last hour": JobFilter(created_after=NOW - timedelta(hours=1)),
}  # fmt: skip


@pytest.mark.parametrize("name", FILTERS)
def test_every_list_filter_of_the_dashboard_uses_an_index(filled: PostgresStore, name: str) -> None:
    names, params = list_filters(FILTERS[name])
    params["limit"] = 51
    assert_reads_few(filled, filled._list_sql(names), params)
