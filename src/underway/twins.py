"""Async twins of blocking calls, made by one helper so that none is forgotten or drifts from
its original (decision 0002: one sync store; async callers offload to a thread)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")


def twin(
    method: Callable[Concatenate[S, P], R],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
    """The async twin of a blocking method: the same parameters, the call on a thread.

    >>> class App:
    ...     def stats(self) -> Stats: ...
    ...     stats_async = twin(stats)        # await app.stats_async()
    """

    @functools.wraps(method)
    async def run(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await asyncio.to_thread(method, self, *args, **kwargs)

    run.__name__ = f"{method.__name__}_async"
    run.__qualname__ = f"{method.__qualname__}_async"
    run.__doc__ = (
        f"`{method.__name__}` for async code: the same call, run on a thread so the event "
        "loop is never blocked."
    )
    return run
