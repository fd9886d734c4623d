"""The network settings underway gives its PostgreSQL connections: TCP keepalives on every
connection (pooled and listening) and a TCP user timeout on pooled ones, so a connection
whose network path died silently is given up instead of waiting for hours; a URL that sets
one of them keeps its own value."""

from __future__ import annotations

from collections.abc import Callable

from underway import App

NewSchemaUrl = Callable[..., str]


def test_pooled_connections_carry_keepalives_and_a_user_timeout(
    new_schema_url: NewSchemaUrl,
) -> None:
    app = App(new_schema_url())
    try:
        store = app.store
        with store.pool.connection() as conn:  # type: ignore[attr-defined]
            params = conn.info.get_parameters()
        assert (params["keepalives"], params["keepalives_idle"], params["keepalives_count"]) == (
            "1", "10", "3")  # fmt: skip
        assert params["tcp_user_timeout"] == "30000"
    finally:
        app.close()


def test_a_url_that_sets_a_network_setting_keeps_it(new_schema_url: NewSchemaUrl) -> None:
    url = new_schema_url()
    app = App(url.replace("?", "?keepalives_idle=3&tcp_user_timeout=5000&", 1))
    try:
        with app.store.pool.connection() as conn:  # type: ignore[attr-defined]
            params = conn.info.get_parameters()
        assert (params["keepalives_idle"], params["tcp_user_timeout"]) == ("3", "5000")
        assert params["keepalives_interval"] == "5"
    finally:
        app.close()
