"""App-wide resources with a life: startup and shutdown hooks and lifespans, opened once when a
worker or scheduler starts and closed when it stops."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

from .registry import Hook, Registry


async def call_hook(hook: Hook, app: Any) -> None:
    """`hook(app)` if it takes an argument, else `hook()`; awaited if it returns an awaitable."""
    result = hook(app) if takes_argument(hook) else hook()
    if inspect.isawaitable(result):
        await result


def takes_argument(fn: Callable[..., Any]) -> bool:
    """Whether `fn` has a required positional parameter (for the app, or a job's Context)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        for p in params
    )


@contextlib.asynccontextmanager
async def app_running(registry: Registry, app: Any) -> AsyncIterator[None]:
    """Enter the app's lifespans and run its startup hooks; undo them in reverse on exit.
    A hook that fails stops the start: the worker does not claim jobs without its resources.
    `app` is what the hooks receive (the user's App)."""
    async with contextlib.AsyncExitStack() as stack:
        for lifespan in registry.lifespans:
            await stack.enter_async_context(lifespan(app))
        for hook in registry.on_startup:
            await call_hook(hook, app)
        for hook in reversed(registry.on_shutdown):
            stack.push_async_callback(call_hook, hook, app)
        yield
