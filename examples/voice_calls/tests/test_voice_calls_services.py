"""The seed's service API: importable async functions, called directly and together with
`asyncio.gather`, on the example's own tables (each test on SQLite and on PostgreSQL)."""

from __future__ import annotations

import asyncio

import pytest
from voice_calls.badges import assign_daily_badges
from voice_calls.cache import Cache, CacheService
from voice_calls.calls import cleanup_expired_calls, get_user_coin_balance, update_user_coin_balance
from voice_calls.coin_deduction import deduct_per_minute_coins
from voice_calls.config import Services
from voice_calls.presence import (
    cleanup_expired_busy_status,
    get_online_users_count,
    mark_inactive_users_offline,
)

from voice_calls import accounts

T0 = 1_954_000_000  # a whole minute (Unix seconds), far from the wall clock
DAY = 86_400


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def row(services: Services, sql: str, *params: object) -> tuple[object, ...]:
    with services.db.transaction() as tx:
        found = tx.one(sql, params)
    assert found is not None
    return found


def test_balances_are_read_added_and_subtracted_never_below_zero(services: Services) -> None:
    async def scenario() -> None:
        user = await accounts.add_user("ana", coins=100)
        assert await get_user_coin_balance(user_id=user) == 100
        await update_user_coin_balance(user_id=user, amount=50, operation="subtract")
        await update_user_coin_balance(user_id=user, amount=100, operation="add", tx_type="earn")
        assert await get_user_coin_balance(user) == 150
        with pytest.raises(ValueError, match="fewer than 151"):
            await update_user_coin_balance(user_id=user, amount=151)
        assert await get_user_coin_balance(user) == 150

    run(scenario())


def test_presence_cleanup_counts_what_it_changed(services: Services) -> None:
    async def scenario() -> None:
        gone = await accounts.add_user("gone", 0, seen=T0 - 600)
        await accounts.add_user("here", 0, seen=T0 - 60)
        caller = await accounts.add_user("caller", 100, seen=T0)
        listener = await accounts.add_user("listener", 0, listener=True, seen=T0)
        await accounts.start_call(caller, listener, rate=1, max_minutes=10, at=T0)
        assert await get_online_users_count() == 4

        offline, cleared = await asyncio.gather(
            mark_inactive_users_offline(inactive_minutes=5, now=T0),
            cleanup_expired_busy_status(now=T0 + 5 * 60),  # the call's busy time still runs
        )
        assert (offline, cleared) == (1, 0)
        assert await get_online_users_count() == 3
        assert await cleanup_expired_busy_status(now=T0 + 10 * 60) == 2
        assert await mark_inactive_users_offline(inactive_minutes=10, now=T0) == 0
        await accounts.see_user(gone, at=T0)
        assert await get_online_users_count() == 4

    run(scenario())


def test_badges_follow_yesterdays_minutes_and_rerunning_reassigns_the_same(
    services: Services,
) -> None:
    today = T0 - T0 % DAY + DAY  # midnight UTC after T0: T0's day is "yesterday"

    async def scenario() -> dict[str, int]:
        caller = await accounts.add_user("caller", 10_000, seen=T0)
        minutes = {"gold": 61, "silver": 30, "bronze": 12, "basic": 2}
        for name, length in minutes.items():
            listener = await accounts.add_user(name, 0, listener=True, seen=T0)
            call = await accounts.start_call(caller, listener, rate=1, max_minutes=120, at=T0)
            await accounts.hang_up(call, at=T0 + length * 60 + 30)
        await accounts.add_user("idle", 0, listener=True, seen=T0)
        first = await assign_daily_badges(now=today + 3600)
        assert await assign_daily_badges(now=today + 7200) == first
        return first

    stats = run(scenario())
    assert stats == {
        "total_listeners": 5, "basic_assigned": 2, "bronze_assigned": 1,
        "silver_assigned": 1, "gold_assigned": 1, "errors": 0,
    }  # fmt: skip
    assert row(services, "SELECT badge FROM badges WHERE listener_id = 2") == ("gold",)


def test_expired_calls_are_charged_ended_settled_and_dropped_from_the_cache(
    services: Services, cache: CacheService
) -> None:
    async def scenario() -> tuple[int, int, int]:
        caller = await accounts.add_user("caller", 100, seen=T0)
        listener = await accounts.add_user("listener", 0, listener=True, share_percent=50)
        call = await accounts.start_call(caller, listener, rate=4, max_minutes=3, at=T0 + 20)
        assert Cache(cache.url).get(f"call:{call}") == {
            "user_id": caller, "listener_id": listener, "rate": 4,
        }  # fmt: skip
        await cleanup_expired_calls(now=T0 + 2 * 60)  # not expired yet
        await cleanup_expired_calls(now=T0 + 10 * 60)
        await cleanup_expired_calls(now=T0 + 11 * 60)  # again: nothing more
        return caller, listener, call

    caller, listener, call = run(scenario())  # type: ignore[misc]
    # started at T0+20 s, expired at T0+200 s: charged at the marks T0+60, +120, +180
    ended = "SELECT status, end_reason, ended_at, coins_charged, settled FROM calls WHERE id = ?"
    assert row(services, ended, call) == ("ended", "expired", T0 + 200, 12, 1)
    assert row(services, "SELECT coins FROM users WHERE id = ?", caller) == (88,)
    assert row(services, "SELECT coins FROM users WHERE id = ?", listener) == (6,)
    assert row(services, "SELECT status FROM presence WHERE user_id = ?", caller) == ("online",)
    assert f"call:{call}" not in cache.values
    assert ("DELETE", f"call:{call}") in cache.requests


def test_the_maintenance_gather_of_the_seed_runs_every_service_at_once(
    services: Services,
) -> None:
    async def scenario() -> list[object]:
        caller = await accounts.add_user("caller", 100)
        listener = await accounts.add_user("listener", 0, listener=True)
        await accounts.start_call(caller, listener, rate=1)
        return await asyncio.gather(
            mark_inactive_users_offline(inactive_minutes=5),
            cleanup_expired_busy_status(),
            cleanup_expired_calls(),
            deduct_per_minute_coins(),
            return_exceptions=True,
        )

    results = run(scenario())
    assert isinstance(results, list)
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert results[:3] == [0, 0, None]
