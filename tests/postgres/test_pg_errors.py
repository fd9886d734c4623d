"""PostgreSQL's refusals become StoreErrors that say what happened and what to do, not all
"unreachable or went away" (issue 11: every driver error read as a lost connection)."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest

import underway
from underway.stores.postgres.store import describe_error


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (psycopg.errors.TooManyConnections("sorry, too many clients already"), "max_connections"),
        (psycopg.errors.DiskFull("could not extend file"), "disk is full"),
        (psycopg.errors.ProgramLimitExceeded("index row size 3016 exceeds"), "too large"),
        (psycopg.errors.ReadOnlySqlTransaction("cannot execute INSERT"), "read-only"),
        (psycopg.errors.InvalidCatalogName('database "nope" does not exist'), "does not exist"),
        (psycopg.errors.AdminShutdown("terminating connection"), "unreachable or went away"),
        (psycopg.OperationalError("connection refused"), "unreachable or went away"),
    ],
)
def test_each_refusal_is_named_with_the_servers_words(error: psycopg.Error, says: str) -> None:
    text = describe_error(error)
    assert says in text and str(error) in text


def test_a_read_only_server_is_said_to_be_read_only(
    new_schema_url: Callable[[], str],
) -> None:
    url = new_schema_url()
    app = underway.App(url)

    @app.task()
    def plain() -> None: ...

    app.migrate()
    app.close()
    read_only = underway.App(f"{url}&options=-c%20default_transaction_read_only%3Don")
    same = read_only.task(name=plain.name)(lambda: None)
    try:
        with pytest.raises(underway.StoreError, match="read-only here") as refused:
            same.enqueue()
        assert "primary" in str(refused.value)
    finally:
        read_only.close()


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda url: url.replace("/test?", "/underway_no_such_db?"), "does not exist"),
        (lambda url: url.replace("127.0.0.1", "no-such-host.invalid"), "does not resolve"),
    ],
)
def test_a_connection_the_server_refuses_says_why_at_once(
    new_schema_url: Callable[[], str], change: Callable[[str], str], says: str
) -> None:
    # It used to retry for connect_timeout_seconds and then say "pool initialization
    # incomplete".
    url = change(new_schema_url())
    assert url != new_schema_url()
    app = underway.App(url)
    with pytest.raises(underway.StoreError, match=says) as refused:
        app.stats()
    assert "pool initialization incomplete" not in str(refused.value)
