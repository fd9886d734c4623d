"""Taking an enqueue's tokens from its tenants' buckets (underway/quotas.py), written once for
both SQL stores: each runs its own `take_tokens` and `bucket_tokens` statements, inside the
transaction that then inserts the jobs, so a refusal rolls back whatever was taken before it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from .messages import QuotaDemand

#: runs a statement with its parameters and returns its first row, or None
FetchOne = Callable[[str, Mapping[str, Any]], Any]
FetchOneAsync = Callable[[str, Mapping[str, Any]], Awaitable[Any]]


def take_tokens(
    fetch_one: FetchOne,
    take_sql: str,
    tokens_sql: str,
    demands: Sequence[QuotaDemand],
    stamp: Mapping[str, Any],
) -> None:
    """Take each demand's tokens, in the given (sorted) order; raises QuotaExceeded for the
    first demand whose bucket cannot meet it. `stamp` holds the store's clock, if its
    statements take it as a parameter."""
    for demand in demands:
        params = {**demand.params(), **stamp}
        if fetch_one(take_sql, params) is None:
            raise demand.refused(float(fetch_one(tokens_sql, params)[0]))


async def take_tokens_async(
    fetch_one: FetchOneAsync,
    take_sql: str,
    tokens_sql: str,
    demands: Sequence[QuotaDemand],
    stamp: Mapping[str, Any],
) -> None:
    """`take_tokens` on an async connection."""
    for demand in demands:
        params = {**demand.params(), **stamp}
        if await fetch_one(take_sql, params) is None:
            raise demand.refused(float((await fetch_one(tokens_sql, params))[0]))
