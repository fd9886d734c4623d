"""Per-job dependencies: the seeds' "scope per execution". Each factory is opened for one job
and closed after it, told about the task's error so a session can roll back.

An async task's dependencies are opened and closed on the worker's event loop. A sync task's
are opened and closed on the task's own thread, so a resource bound to its thread (a sqlite3
connection) works inside the task and a factory that blocks never freezes the loop; an async
factory of a sync task still runs on the loop, called from that thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from types import TracebackType
from typing import Any, TypeVar

from .context import Context
from .errors import UnderwayError
from .hooks import takes_argument

T = TypeVar("T")

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


def _made(factory: Factory, ctx: Context, wrap: Callable[..., Any] | None = None) -> Any:
    maker = wrap(factory) if wrap is not None else factory
    return maker(ctx) if takes_argument(factory) else maker()


def _opening_failed(name: str, exc: Exception) -> DependencyError:
    return DependencyError(f"dependency {name!r} failed to open: {type(exc).__name__}: {exc}")


def _closing_failed(exc: Exception) -> DependencyError:
    return DependencyError(f"a dependency failed to close: {type(exc).__name__}: {exc}")


# --- on the event loop (async tasks) ------------------------------------------------------------


async def open_dependencies(
    factories: Mapping[str, Factory], ctx: Context, stack: contextlib.AsyncExitStack
) -> Deps:
    """Create the job's dependencies in declaration order; `stack` closes them in reverse."""
    deps = Deps()
    for name, factory in factories.items():
        try:
            deps[name] = await _open(factory, ctx, stack)
        except Exception as exc:
            raise _opening_failed(name, exc) from exc
    return deps


async def _open(factory: Factory, ctx: Context, stack: contextlib.AsyncExitStack) -> Any:
    if inspect.isasyncgenfunction(factory):
        return await stack.enter_async_context(_made(factory, ctx, contextlib.asynccontextmanager))
    if inspect.isgeneratorfunction(factory):
        return stack.enter_context(_made(factory, ctx, contextlib.contextmanager))
    value = _made(factory, ctx)
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
        raise _closing_failed(exc) from exc


# --- on the task's thread (sync tasks) --------------------------------------------------------


@contextlib.contextmanager
def dependencies_in_thread(
    factories: Mapping[str, Factory], ctx: Context, loop: asyncio.AbstractEventLoop
) -> Iterator[Deps]:
    """Open the job's dependencies on the calling thread (a sync task's own), in declaration
    order, and close them in reverse when the block ends, told about its error. Async factories
    run on `loop`, which must be running in another thread."""
    stack = contextlib.ExitStack()
    deps = Deps()
    try:
        for name, factory in factories.items():
            try:
                deps[name] = _open_in_thread(factory, ctx, stack, loop)
            except Exception as exc:
                raise _opening_failed(name, exc) from exc
    except BaseException:
        stack.close()
        raise
    try:
        yield deps
    except BaseException as error:
        _close_in_thread(stack, error)
        raise
    _close_in_thread(stack, None)


def _open_in_thread(
    factory: Factory, ctx: Context, stack: contextlib.ExitStack, loop: asyncio.AbstractEventLoop
) -> Any:
    if inspect.isasyncgenfunction(factory):
        return _enter_async(_made(factory, ctx, contextlib.asynccontextmanager), stack, loop)
    if inspect.isgeneratorfunction(factory):
        return stack.enter_context(_made(factory, ctx, contextlib.contextmanager))
    value = _made(factory, ctx)
    if inspect.isawaitable(value):
        value = _on_loop(_awaited(value), loop)
    if hasattr(value, "__aenter__") and hasattr(value, "__aexit__"):
        return _enter_async(value, stack, loop)
    if hasattr(value, "__enter__") and hasattr(value, "__exit__"):
        return stack.enter_context(value)
    return value


def _enter_async(manager: Any, stack: contextlib.ExitStack, loop: asyncio.AbstractEventLoop) -> Any:
    value = _on_loop(manager.__aenter__(), loop)

    def exit_on_loop(
        kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        return bool(_on_loop(manager.__aexit__(kind, exc, tb), loop))

    stack.push(exit_on_loop)
    return value


def _close_in_thread(stack: contextlib.ExitStack, error: BaseException | None) -> None:
    try:
        if error is None:
            stack.close()
        else:
            stack.__exit__(type(error), error, error.__traceback__)
    except Exception as exc:
        if exc is error:
            return
        raise _closing_failed(exc) from exc


async def _awaited(value: Awaitable[T]) -> T:
    return await value


def _on_loop(coro: Coroutine[Any, Any, T], loop: asyncio.AbstractEventLoop) -> T:
    return asyncio.run_coroutine_threadsafe(coro, loop).result()
