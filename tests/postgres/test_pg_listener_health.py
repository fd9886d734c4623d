"""A LISTEN connection whose network path dies silently (no FIN, no RST: tests/pgproxy.py
swallows its bytes) is noticed by the listener's health check and replaced within 15 s, the
bound of the reliability catalogue's F09; the health check's ping notices never reach the
readers. A replacement is logged as a warning (no process-local metric: underway's metrics
are read from the store, the same in every process)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest

from pgproxy import Link, Proxy  # tests/pgproxy.py, on the path through the root conftest
from underway.settings import Settings
from underway.stores import Store
from underway.stores.postgres import liveness
from underway.stores.postgres.listener import topic_channel
from underway.stores.postgres.liveness import is_ping
from underway.stores.postgres.store import PostgresStore, _split_url

DETECT_WITHIN = 15.0


@pytest.fixture
def proxied(
    database_url: str, proxy: Proxy, make_store: Callable[..., Store]
) -> Iterator[PostgresStore]:
    make_store()  # migrates the schema, directly
    store = PostgresStore(proxy.url(database_url), Settings.load({}, database_url=database_url))
    yield store
    store.close()


def test_a_black_holed_listener_is_replaced_within_15_s(
    proxied: PostgresStore, proxy: Proxy, make_store: Callable[..., Store], database_url: str
) -> None:
    cancel_channel = topic_channel("cancels", proxied.schema)
    cancels = proxied.listen("cancels")
    proxied.wait_for_change(0.0)  # the wake-up listener listens from here on
    witness = make_store().listen("cancels")  # hears the pings on the channel, never held
    raw = psycopg.connect(_split_url(database_url)[0], autocommit=True)
    raw.execute(f'LISTEN "{cancel_channel}"')
    try:
        held = proxy.hold(Link.listens)
        assert sorted(str(link.channel()) for link in held) == sorted(
            [cancel_channel, proxied.channel]
        )
        held_at = time.monotonic()

        def replaced() -> bool:
            fresh = {link.channel() for link in proxy.links if link.listens() and not link.held}
            return {cancel_channel, proxied.channel} <= fresh

        witnessed: list[str] = []
        while not replaced() and time.monotonic() - held_at < DETECT_WITHIN + 5:
            cancels.wait(0.1)
            proxied.wait_for_change(0.1)
            witnessed += witness.wait(0.05) or []
        took = time.monotonic() - held_at
        assert replaced(), "the black-holed LISTEN connections were never replaced"
        assert took <= DETECT_WITHIN, f"replaced only after {took:.1f} s"

        pings = [n.payload for n in raw.notifies(timeout=0.5) if is_ping(n.payload)]
        assert pings, "the health check sent no ping on the channel"
        assert witnessed == [], "a ping notice reached a reader"

        # The new connections hear notices again.
        job_id = str(uuid.uuid4())
        raw.execute("SELECT pg_notify(%s, %s)", (cancel_channel, job_id))
        got: list[str] = []
        deadline = time.monotonic() + 5
        while job_id not in got and time.monotonic() < deadline:
            got += cancels.wait(0.1) or []
        assert got == [job_id]
        while proxied.wait_for_change(0.1):  # the replacement said "look": settle first
            pass
        raw.execute("SELECT pg_notify(%s, '')", (proxied.channel,))
        assert proxied.wait_for_change(5.0) is True
    finally:
        raw.close()
        witness.close()
        cancels.close()


@pytest.fixture
def quick_pings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(liveness, "QUIET_SECONDS", 0.3)
    monkeypatch.setattr(liveness, "PING_TIMEOUT_SECONDS", 0.5)


@pytest.mark.usefixtures("quick_pings")
def test_a_healthy_quiet_listener_hears_its_pings_and_stays(
    make_store: Callable[..., Store],
) -> None:
    listener = make_store().listen("cancels")
    try:
        deadline = time.monotonic() + 3.0  # several rounds of ping and answer
        while time.monotonic() < deadline:
            assert listener.wait(0.1) == [], (
                "a ping reached the reader, or the listener was replaced"
            )
    finally:
        listener.close()


@pytest.mark.usefixtures("quick_pings")
def test_a_reader_that_comes_back_late_finds_the_answer_to_its_ping(
    make_store: Callable[..., Store],
) -> None:
    listener = make_store().listen("cancels")
    try:
        time.sleep(liveness.QUIET_SECONDS + 0.1)
        assert listener.wait(0.0) == []  # quiet for long enough: sends its ping, returns
        time.sleep(2 * liveness.PING_TIMEOUT_SECONDS)  # the reader is busy elsewhere
        assert listener.wait(0.1) == [], "the answer was waiting on the socket: not dead"
    finally:
        listener.close()
