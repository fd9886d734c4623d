"""Calls and coins: balances, charging a call's minutes, ending a call and settling its
listener. The synchronous functions take an open transaction (`Tx`); the async ones are the
service API (`await get_user_coin_balance(123)`), each in a transaction of its own."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from .config import Services, current
from .db import Tx

MINUTE = 60

CALL_COLUMNS = "id, user_id, listener_id, rate, started_at, expires_at, status, charged_through"


@dataclass(frozen=True)
class Call:
    id: int
    user_id: int
    listener_id: int
    rate: int  # coins per minute
    started_at: int
    expires_at: int
    status: str
    charged_through: int | None  # the last minute charged (Unix seconds), None before any

    def minutes_due(self, through: int) -> range:
        """The minute marks from the first uncharged one up to `through`, inclusive."""
        first = -(-self.started_at // MINUTE) * MINUTE  # the first whole minute of the call
        if self.charged_through is not None:
            first = max(first, self.charged_through + MINUTE)
        return range(first, through + 1, MINUTE)


def load_call(tx: Tx, call_id: int) -> Call | None:
    """The call, its row locked until the transaction ends."""
    row = tx.one(f"SELECT {CALL_COLUMNS} FROM calls WHERE id = ? {{lock}}", (call_id,))
    return None if row is None else Call(*row)


@dataclass
class Charged:
    """What charging one call did: minutes and coins, and whether it ended the call."""

    minutes: int = 0
    coins: int = 0
    ended: bool = False


def charge_call(tx: Tx, call: Call, through: int) -> Charged:
    """Charge every uncharged minute of `call` up to `through`, each exactly once: a minute
    already in `call_minutes` (its key is (call, minute)) is never charged again. A user who
    cannot pay the next minute has the call ended at that minute and the listener settled."""
    done = Charged()
    if call.status != "ongoing":
        return done
    for minute in call.minutes_due(through):
        balance = user_balance(tx, call.user_id)
        if balance < call.rate:
            end_call(tx, call, minute, "insufficient_coins")
            done.ended = True
            break
        if not tx.execute(
            "INSERT INTO call_minutes (call_id, minute, coins) VALUES (?, ?, ?) "
            "ON CONFLICT (call_id, minute) DO NOTHING",
            (call.id, minute, call.rate),
        ):
            continue  # charged already (a retried run): the key keeps it to once
        tx.execute("UPDATE users SET coins = coins - ? WHERE id = ?", (call.rate, call.user_id))
        record_transaction(tx, call.user_id, -call.rate, "spend", call.id, minute)
        tx.execute(
            "UPDATE calls SET charged_through = ?, coins_charged = coins_charged + ? WHERE id = ?",
            (minute, call.rate, call.id),
        )
        done.minutes += 1
        done.coins += call.rate
    return done


def end_call(tx: Tx, call: Call, at: int, reason: str) -> None:
    """End an ongoing call at `at`, after charging the minutes it ran, and settle it."""
    if call.status != "ongoing":
        return
    # Every whole minute before the end is charged first; one the user cannot pay ends it there.
    if reason != "insufficient_coins" and charge_call(tx, call, at - 1).ended:
        return
    tx.execute(
        "UPDATE calls SET status = 'ended', ended_at = ?, end_reason = ? WHERE id = ?",
        (at, reason, call.id),
    )
    settle(tx, call.id, at)
    tx.execute(
        "UPDATE presence SET status = 'online', busy_until = NULL, last_seen = ? "
        "WHERE user_id IN (?, ?) AND status = 'busy'",
        (at, call.user_id, call.listener_id),
    )


def settle(tx: Tx, call_id: int, at: int) -> int:
    """Credit the listener their share of what the call charged, once: the call's `settled`
    flag is set in the same transaction. Returns the coins credited."""
    row = tx.one(
        "SELECT c.listener_id, c.coins_charged, coalesce(l.share_percent, 60) FROM calls c "
        "LEFT JOIN listeners l ON l.user_id = c.listener_id WHERE c.id = ? AND c.settled = 0",
        (call_id,),
    )
    if row is None:
        return 0
    listener_id, charged, share = row
    earned = charged * share // 100
    tx.execute("UPDATE calls SET settled = 1 WHERE id = ?", (call_id,))
    tx.execute("UPDATE users SET coins = coins + ? WHERE id = ?", (earned, listener_id))
    tx.execute("UPDATE listeners SET earned = earned + ? WHERE user_id = ?", (earned, listener_id))
    record_transaction(tx, listener_id, earned, "earn", call_id, at)
    return int(earned)


def user_balance(tx: Tx, user_id: int) -> int:
    row = tx.one("SELECT coins FROM users WHERE id = ? {lock}", (user_id,))
    if row is None:
        raise ValueError(f"no user with id {user_id}")
    return int(row[0])


def record_transaction(
    tx: Tx, user_id: int, amount: int, tx_type: str, call_id: int | None, at: int
) -> None:
    tx.execute(
        "INSERT INTO coin_transactions (user_id, amount, tx_type, call_id, at) "
        "VALUES (?, ?, ?, ?, ?)",
        (user_id, amount, tx_type, call_id, at),
    )


def expired_calls(tx: Tx, now: int) -> list[int]:
    rows = tx.all(
        "SELECT id FROM calls WHERE status = 'ongoing' AND expires_at <= ? ORDER BY id", (now,)
    )
    return [row[0] for row in rows]


def clear_cache(services: Services, tx: Tx) -> None:
    """Drop the calls that ended from the cache, each marked done in `tx`, so a run that
    fails here (the cache is down) is retried and the retry finishes the job; it charges
    nothing twice. The cache only mirrors the database: dropping an entry early (a run that
    then rolls back) costs a read of the database, nothing more."""
    if services.cache is None:
        return
    ended = tx.all("SELECT id FROM calls WHERE status = 'ended' AND cache_cleared = 0 ORDER BY id")
    for (call_id,) in ended:
        services.cache.delete(f"call:{call_id}")
        tx.execute("UPDATE calls SET cache_cleared = 1 WHERE id = ?", (call_id,))


# --- the service API --------------------------------------------------------------------------


async def get_user_coin_balance(user_id: int) -> int:
    """A user's current coin balance."""

    def read() -> int:
        with current().db.transaction() as tx:
            return user_balance(tx, user_id)

    return await asyncio.to_thread(read)


async def update_user_coin_balance(
    user_id: int, amount: int, operation: str = "subtract", tx_type: str = "spend"
) -> int:
    """Add or subtract coins, with a transaction record; the new balance. Raises ValueError if
    a subtraction would take the balance below zero."""
    if operation not in ("add", "subtract") or amount < 0:
        raise ValueError(f"operation must be 'add' or 'subtract' of a positive amount: {operation}")

    def update() -> int:
        with current().db.transaction() as tx:
            balance = user_balance(tx, user_id)
            delta = amount if operation == "add" else -amount
            if balance + delta < 0:
                raise ValueError(f"user {user_id} has {balance} coins, fewer than {amount}")
            tx.execute("UPDATE users SET coins = coins + ? WHERE id = ?", (delta, user_id))
            record_transaction(tx, user_id, delta, tx_type, None, int(time.time()))
            return balance + delta

    return await asyncio.to_thread(update)


async def cleanup_expired_calls(now: float | None = None) -> None:
    """End the calls past their expiry: charge the minutes they ran, settle their listeners,
    free both sides' presence, and drop them from the cache."""
    moment = int(time.time() if now is None else now)
    services = current()

    def clean() -> None:
        with services.db.transaction() as tx:
            for call_id in expired_calls(tx, moment):
                call = load_call(tx, call_id)
                if call is not None:
                    end_call(tx, call, min(call.expires_at, moment), "expired")
            clear_cache(services, tx)

    await asyncio.to_thread(clean)
