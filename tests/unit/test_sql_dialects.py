"""Both SQL backends name the same statements the same way (sqlite/queries.sql and
postgres/queries.sql), so the shared algorithms in stores/sql.py run on either by name."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources

import pytest

from underway.stores.sqlfile import parse_queries, placeholders

# Statements only one dialect has, and why. Everything else must be in both files.
SQLITE_ONLY = {
    # connection settings and explicit write transactions: psycopg's pool and
    # conn.transaction() do this on PostgreSQL without statements of ours
    "set_busy_timeout",
    "set_journal_wal",
    "set_synchronous",
    "set_foreign_keys",
    "begin",
    "commit",
    "rollback",
    # idle workers poll the data version; PostgreSQL LISTENs instead
    "data_version",
    # a limited queue claimed in one statement, under the database's single write lock
    "claim_limited",
    # fair claiming's probes and pick, one statement each (PostgreSQL's claim_fair is one)
    "claim_picked",
    "fair_group_ids",
    "picked_ids",
    "fair_next_tenant",
    "fair_queue_after",
    "fair_queue_from",
    "fair_candidates",
    "skipped_queues",
    # heartbeat answers read back per lease; PostgreSQL's heartbeat returns them itself
    "lease_states",
}
POSTGRES_ONLY = {
    # the server's clock (SQLite's clock is this machine's), read against a worker's
    "now",
    "server_clock",
    # what holds the server's xmin horizon (SQLite keeps no dead rows behind a reader)
    "horizon_holders",
    # wake-ups behind a transaction pooler, where nothing can LISTEN
    "newest_change",
    # wake-ups across processes
    "listen",
    "notify",
    "ping",  # a listener's health check (notifies its own channel)
    # concurrent migrations take turns; the schema a store lives in
    "lock_migrations",
    "create_schema",
    # bulk enqueue
    "copy_jobs",
    # limited queues: the main claim skips them, their claimers take turns on a row lock
    "filter_unlimited",
    "lock_limited_queue",
    # fair claiming in one statement (SQLite's probes are several: claim_picked and others)
    "claim_fair",
    # counters are kept per connection (no one waits on another's row); SQLite has one writer
    # and one row per task and queue, so nothing to fold
    "fold_counters",
    "fold_delivery_counters",
    "fold_tallies",
    "fold_minutes",
}
# Fragments a shared statement takes in one dialect only: PostgreSQL names the schema of every
# table; SQLite's claim picks its index, PostgreSQL's claim skips limited queues.
FRAGMENTS_ONLY = {"sqlite": {"claim": {"claim_index"}}, "postgres": {"claim": {"unlimited"}}}


def queries(backend: str) -> Mapping[str, str]:
    path = resources.files("underway.stores").joinpath(backend, "queries.sql")
    return parse_queries(path.read_text(encoding="utf-8"), f"{backend}/queries.sql")


def test_both_dialects_define_the_same_statement_names() -> None:
    sqlite, postgres = set(queries("sqlite")), set(queries("postgres"))
    assert sqlite - SQLITE_ONLY == postgres - POSTGRES_ONLY, (
        f"only in sqlite: {sorted(sqlite - postgres - SQLITE_ONLY)}; "
        f"only in postgres: {sorted(postgres - sqlite - POSTGRES_ONLY)}"
    )


@pytest.mark.parametrize(
    ("names", "backend"), [(SQLITE_ONLY, "sqlite"), (POSTGRES_ONLY, "postgres")]
)
def test_each_dialect_only_name_exists_in_its_dialect_alone(names: set[str], backend: str) -> None:
    other = "postgres" if backend == "sqlite" else "sqlite"
    assert names <= set(queries(backend)), "a dialect-only name is listed but not defined"
    assert not names & set(queries(other)), "a name listed as dialect-only is in both files"


def test_shared_statements_take_the_same_fragments() -> None:
    sqlite, postgres = queries("sqlite"), queries("postgres")
    for name in sorted(set(sqlite) & set(postgres)):
        mine = placeholders(sqlite[name]) - FRAGMENTS_ONLY["sqlite"].get(name, set())
        theirs = placeholders(postgres[name]) - FRAGMENTS_ONLY["postgres"].get(name, set())
        assert mine == theirs - {"schema"}, f"statement {name!r} takes different fragments"
