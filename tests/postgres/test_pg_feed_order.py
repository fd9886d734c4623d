"""The change feed on PostgreSQL keeps each job's changes in the order they committed, even
when a transaction that took its id early waits for a row another, younger transaction holds:
a worker's batch of outcomes meeting a cancel, a rescue meeting a report. Two connections of
the test's own play the two transactions, so the interleaving is exact."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from underway.ids import uuid7
from underway.model import Change
from underway.stores import Store
from underway.stores.messages import ChangeFilter, NewJob
from underway.stores.postgres.store import _split_url

WaitFor = Callable[..., Any]


def new_job() -> NewJob:
    return NewJob(id=uuid7(), task="tests.noop", title="tests.noop", args={}, args_json="{}",
                  queue="default", priority=0, max_attempts=1, delay=0.0, run_at=None,
                  tenant=None, callback_url=None, key=None, status_message=None)  # fmt: skip


def test_a_jobs_changes_come_in_commit_order_when_an_older_transaction_waited_for_its_row(
    store: Store, database_url: str, wait_for: WaitFor
) -> None:
    conninfo, schema = _split_url(database_url)
    jobs = sql.SQL("{}.underway_jobs").format(sql.Identifier(schema))
    set_progress = sql.SQL("UPDATE {} SET progress = %s WHERE id = %s").format(jobs)
    head = store.change_head()
    a, b = store.enqueue([new_job(), new_job()])
    with psycopg.connect(conninfo) as older, psycopg.connect(conninfo) as younger:
        older.execute(set_progress, [0.1, a.id])  # takes its transaction id first
        younger.execute(set_progress, [0.7, b.id])  # a later id, and b's row lock
        waiting = threading.Thread(
            target=lambda: (older.execute(set_progress, [0.9, b.id]), older.commit())
        )
        waiting.start()
        time.sleep(0.2)  # the older transaction is now queued on b's row
        younger.commit()
        waiting.join(10)
    assert not waiting.is_alive()
    now = store.get(b.id)
    assert now is not None and now.progress == 0.9  # the older transaction wrote last

    def b_changes() -> list[Change] | None:
        got = store.changes(head, ChangeFilter(job_id=b.id), 10)
        return got if len(got) == 3 else None

    seen: list[Change] = wait_for(b_changes, timeout=120, what="b's three changes")
    assert [c.job.progress for c in seen] == [None, 0.7, 0.9]
    assert seen[-1].job == now


def test_a_statements_changes_share_rows_of_at_most_a_thousand_and_a_reader_pages_through_them(
    store: Store, database_url: str
) -> None:
    """One row holds a statement's changes (what makes the feed cheap), split so that a reader
    resuming inside a big statement never unpacks more than about a thousand."""
    conninfo, schema = _split_url(database_url)
    head = store.change_head()
    jobs = store.enqueue([new_job() for _ in range(2500)])  # one INSERT statement
    seen: list[Change] = []
    cursor = head
    while page := store.changes(cursor, ChangeFilter(), 100):
        seen.extend(page)
        cursor = page[-1].cursor
    assert sorted(c.job.id for c in seen) == sorted(j.id for j in jobs)  # each once
    assert {c.kind.value for c in seen} == {"enqueued"}
    assert store.changes(store.change_head(), ChangeFilter(), 10) == []
    with psycopg.connect(conninfo) as conn:
        sizes = [n for (n,) in conn.execute(
            sql.SQL("SELECT cardinality(items) FROM {}.underway_changes").format(
                sql.Identifier(schema)))]  # fmt: skip
    assert sum(sizes) == 2500 and 3 <= len(sizes) <= 10 and max(sizes) < 1500
