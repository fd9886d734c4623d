"""Tenant quotas on the caller's own PostgreSQL connection (`enqueue(connection=...)`): the
bucket update runs on that connection inside that transaction, so a rollback gives the tokens
back, and a refusal leaves the caller's transaction usable (a savepoint) with nothing of the
refused call in it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from underway import App, QuotaExceeded, Task

MakeApp = Callable[..., App]


@pytest.fixture
def app(make_app: MakeApp) -> App:
    app = make_app(tenant_enqueue_rate=0.01, tenant_enqueue_burst=2)
    app.migrate()
    return app


@pytest.fixture
def send(app: App) -> Task[[int], int]:
    @app.task(name="tests.send")
    def send(n: int) -> int:
        return n

    return send


@pytest.fixture
def conn(conninfo: str, schema: str) -> Iterator[psycopg.Connection[Any]]:
    connection = psycopg.connect(conninfo, options=f"-c search_path={schema}")
    try:
        yield connection
    finally:
        connection.close()


def _count(app: App) -> int:
    return len(app.list_jobs(tenant="acme").jobs)


def test_a_rolled_back_transaction_gives_its_tokens_back(
    app: App, send: Task[[int], int], conn: psycopg.Connection[Any]
) -> None:
    acme = send.options(tenant="acme", connection=conn)
    acme.enqueue(1)
    acme.enqueue(2)
    with pytest.raises(QuotaExceeded):
        acme.enqueue(3)
    conn.rollback()
    assert _count(app) == 0
    send.options(tenant="acme").enqueue_many([{"n": 4}, {"n": 5}])  # both tokens are back
    assert _count(app) == 2


def test_a_refusal_keeps_the_callers_transaction_and_its_earlier_jobs(
    app: App, send: Task[[int], int], conn: psycopg.Connection[Any]
) -> None:
    acme = send.options(tenant="acme", connection=conn)
    acme.enqueue(1)
    with pytest.raises(QuotaExceeded):
        acme.enqueue_many([{"n": 2}, {"n": 3}])
    acme.enqueue(4)  # the transaction is still usable, and one token was left
    conn.commit()
    assert sorted(job.args["n"] for job in app.list_jobs(tenant="acme").jobs) == [1, 4]


def test_the_async_connection_is_metered_in_its_transaction(
    app: App, send: Task[[int], int], conninfo: str
) -> None:
    async def go() -> None:
        async with await psycopg.AsyncConnection.connect(conninfo) as conn:
            acme = send.options(tenant="acme", connection=conn)
            await acme.enqueue_many_async([{"n": 1}, {"n": 2}])
            with pytest.raises(QuotaExceeded):
                await acme.enqueue_async(3)
            await conn.commit()

    asyncio.run(go())
    assert _count(app) == 2
