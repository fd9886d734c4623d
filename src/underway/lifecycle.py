"""Resources with a life: app-wide ones opened once per worker process (startup/shutdown hooks
and lifespans), and per-job dependencies opened for each job and closed after it."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

from .errors import UnderwayError

if TYPE_CHECKING:
    from .app import App
    from .context import Context

Hook = Callable[..., Any]
Lifespan = Callable[["App"], contextlib.AbstractAsyncContextManager[Any]]
#: A dependency factory: called (with the job's Context if it takes one argument) for each job.
#: It may return a plain value, a context manager, an async context manager, or be a generator
#: or async generator function that yields the value (code after the yield closes it).
Factory = Callable[..., Any]


class DependencyError(UnderwayError):
    """A per-job dependency failed to open or to close; the job's attempt fails with it."""


class Deps(dict[str, Any]):
    """The dependencies of one job: `ctx.deps.db` or `ctx.deps["db"]`."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(
                f"no dependency named {name!r}; this task declares: {', '.join(self) or 'none'}"
            ) from None


async def _call(hook: Hook, app: App) -> None:
    result = hook(app) if _takes_argument(hook) else hook()
    if inspect.isawaitable(result):
        await result


def _takes_argument(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        for p in params
    )


@contextlib.asynccontextmanager
async def app_running(app: App) -> AsyncIterator[None]:
    """Run the app's startup hooks and enter its lifespans; undo them in reverse on exit.
    A hook that fails stops the start: the worker does not claim jobs without its resources."""
    async with contextlib.AsyncExitStack() as stack:
        for lifespan in app._lifespans:
            await stack.enter_async_context(lifespan(app))
        for hook in app._on_startup:
            await _call(hook, app)
        for hook in reversed(app._on_shutdown):
            stack.push_async_callback(_call, hook, app)
        yield


async def open_dependencies(
    factories: Mapping[str, Factory], ctx: Context, stack: contextlib.AsyncExitStack
) -> Deps:
    """Create the job's dependencies in declaration order; `stack` closes them in reverse."""
    deps = Deps()
    for name, factory in factories.items():
        try:
            deps[name] = await _open(factory, ctx, stack)
        except Exception as exc:
            raise DependencyError(
                f"dependency {name!r} failed to open: {type(exc).__name__}: {exc}"
            ) from exc
    return deps


async def _open(factory: Factory, ctx: Context, stack: contextlib.AsyncExitStack) -> Any:
    if inspect.isasyncgenfunction(factory):
        manager: Any = contextlib.asynccontextmanager(factory)
        made = manager(ctx) if _takes_argument(factory) else manager()
        return await stack.enter_async_context(made)
    if inspect.isgeneratorfunction(factory):
        manager = contextlib.contextmanager(factory)
        made = manager(ctx) if _takes_argument(factory) else manager()
        return stack.enter_context(made)
    value = factory(ctx) if _takes_argument(factory) else factory()
    if inspect.isawaitable(value):
        value = await value
    if hasattr(value, "__aenter__") and hasattr(value, "__aexit__"):
        return await stack.enter_async_context(value)
    if hasattr(value, "__enter__") and hasattr(value, "__exit__"):
        return stack.enter_context(value)
    return value


async def close_dependencies(stack: contextlib.AsyncExitStack, error: BaseException | None) -> None:
    """Close the job's dependencies, telling them about the task's error (so a session can
    roll back). A failure to close becomes the job's error."""
    try:
        if error is None:
            await stack.aclose()
        else:
            await stack.__aexit__(type(error), error, error.__traceback__)
    except Exception as exc:
        if exc is error:
            return
        raise DependencyError(f"a dependency failed to close: {type(exc).__name__}: {exc}") from exc
