"""Tasks declared as classes: settings as class attributes, dependencies in the constructor
(built fresh for each job from its dependency scope), the work in `execute`.

>>> class CopyOperation(underway.TaskClass):
...     queue = "files"
...     status_message = "Pending"
...     deps = {"storage": open_storage}
...     def __init__(self, storage: Storage) -> None:
...         self.storage = storage
...     async def execute(self, ctx: underway.Context, src: str, dst: str) -> int: ...
>>> copy = app.task_class(CopyOperation)
>>> job = copy.enqueue(src="a", dst="b")

Pure: declaring one does no I/O. The worker runs a class task like any other: its
dependencies are opened for the job (see `dependencies.py`), the class is built from them,
then `execute` runs with the job's arguments.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import numbers
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NoReturn, ParamSpec, Protocol, TypeVar

from .context import Context
from .errors import ConfigurationError
from .retry import Backoff
from .tasks import Task, is_context_param

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

#: the settings a task class may declare as class attributes (and `app.task_class` override)
SETTINGS = frozenset(
    {"name", "queue", "priority", "max_attempts", "timeout", "retry", "no_retry_on", "title",
     "status_message", "deps"}
)  # fmt: skip


class TaskClass:
    """Base of a task declared as a class. Subclass it, set the settings you need as class
    attributes, take dependencies in `__init__` (one keyword per entry of `deps`) and do the
    work in `execute`, sync or async, with or without a first `ctx` parameter. Register it
    with `app.task_class(YourClass)`.

    Any other public lowercase class attribute is refused when the class is defined, so a
    misspelt setting (`max_attempt = 3`) cannot pass silently; name your own helpers `_x`
    or `UPPER_CASE`.
    """

    #: the registered name; default `module.qualname` of the class
    name: ClassVar[str | None] = None
    queue: ClassVar[str] = "default"
    priority: ClassVar[int] = 0
    max_attempts: ClassVar[int] = 4
    #: seconds an attempt may run before it is stopped; None: no limit
    timeout: ClassVar[float | None] = None
    retry: ClassVar[Backoff | None] = None
    #: errors that fail the job at once instead of retrying
    no_retry_on: ClassVar[tuple[type[BaseException], ...]] = ()
    #: the jobs' title; default the task's name
    title: ClassVar[str | None] = None
    #: what a job shows as its status message from enqueue until the task reports one
    status_message: ClassVar[str | None] = None
    #: factories opened per job; each one's value is passed to `__init__` by its name
    deps: ClassVar[Mapping[str, Callable[..., Any]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _refuse_unknown_attributes(cls)


class ExecutesWithContext(Protocol[P, R_co]):
    """A class whose `execute` takes the Context first: `app.task_class` types `enqueue`
    with the other parameters."""

    def execute(self, ctx: Context, /, *args: P.args, **kwargs: P.kwargs) -> R_co: ...


class Executes(Protocol[P, R_co]):
    """A class whose `execute` takes only the task's parameters."""

    def execute(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...


class ClassTask(Task[P, R]):
    """A registered task class: `enqueue` takes the parameters of `execute` (without `self`
    and `ctx`). It is not called directly: a worker builds the class for each job."""

    task_class: type[TaskClass]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> NoReturn:
        raise ConfigurationError(
            f"task {self.name} is a class: a worker builds {self.task_class.__name__} for each "
            "job; enqueue it, or build the class yourself and call execute() to run it here"
        )

    def __repr__(self) -> str:
        return f"<ClassTask {self.name} class={self.task_class.__qualname__} queue={self.queue}>"


def class_task(cls: type[Any], overrides: Mapping[str, Any], app: Any) -> ClassTask[Any, Any]:
    """The task handle of `cls` with `overrides` over its class attributes."""
    if not (isinstance(cls, type) and issubclass(cls, TaskClass)):
        raise ConfigurationError(
            f"app.task_class takes a subclass of underway.TaskClass, got {cls!r}; for a "
            "function use @app.task"
        )
    unknown = sorted(set(overrides) - SETTINGS)
    if unknown:
        raise ConfigurationError(
            f"unknown task option(s) {', '.join(unknown)}; app.task_class takes "
            f"{', '.join(sorted(SETTINGS))}"
        )
    settings = {key: getattr(cls, key) for key in SETTINGS} | dict(overrides)
    _check_types(cls, settings)
    deps = dict(settings["deps"])
    _check_constructor(cls, deps)
    handle: ClassTask[Any, Any] = ClassTask(
        _runner(cls), app=app, name=settings["name"] or f"{cls.__module__}.{cls.__qualname__}",
        queue=settings["queue"], priority=settings["priority"],
        max_attempts=settings["max_attempts"], timeout=settings["timeout"],
        retry=settings["retry"] or Backoff(), no_retry_on=tuple(settings["no_retry_on"]),
        title=settings["title"], deps=deps, status_message=settings["status_message"],
    )  # fmt: skip
    handle.task_class = cls
    return handle


# --- checks -----------------------------------------------------------------------------------


def _refuse_unknown_attributes(cls: type[TaskClass]) -> None:
    for attr, value in vars(cls).items():
        if attr.startswith("_") or attr.isupper() or attr in SETTINGS or attr == "execute":
            continue
        if inspect.isfunction(value) or isinstance(value, staticmethod | classmethod | property):
            continue
        if isinstance(value, functools.cached_property | type):
            continue
        near = difflib.get_close_matches(attr, SETTINGS, n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        raise ConfigurationError(
            f"task class {cls.__qualname__}: unknown setting {attr} = {value!r}{hint}; a task "
            f"class takes {', '.join(sorted(SETTINGS))}. Name an attribute of your own _{attr} "
            "or in UPPER_CASE"
        )


#: what each setting must be, and how to say so
_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "name": ((str, type(None)), "a string or None"),
    "queue": ((str,), "a string"),
    "priority": ((int,), "a whole number"),
    "max_attempts": ((int,), "a whole number"),
    "timeout": ((numbers.Real, type(None)), "a number of seconds or None"),
    "retry": ((Backoff, type(None)), "an underway.Backoff or None"),
    "no_retry_on": ((tuple, list), "a tuple of exception classes"),
    "title": ((str, type(None)), "a string or None"),
    "status_message": ((str, type(None)), "a string or None"),
    "deps": ((Mapping,), "a dict of names to factories"),
}


def _check_types(cls: type[TaskClass], settings: Mapping[str, Any]) -> None:
    for key, (types, wanted) in _TYPES.items():
        value = settings[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ConfigurationError(
                f"task class {cls.__qualname__}: {key} must be {wanted}, got {value!r}"
            )
    for kind in settings["no_retry_on"]:
        if not (isinstance(kind, type) and issubclass(kind, BaseException)):
            raise ConfigurationError(
                f"task class {cls.__qualname__}: no_retry_on holds {kind!r}, not an exception class"
            )
    for dep, factory in settings["deps"].items():
        if not callable(factory):
            raise ConfigurationError(
                f"task class {cls.__qualname__}: deps[{dep!r}] is {factory!r}, not a factory "
                "(a function or class called for each job)"
            )


def _check_constructor(cls: type[TaskClass], deps: Mapping[str, Any]) -> None:
    """Every dependency must reach `__init__` by its name, and `__init__` may need no other."""
    if getattr(cls, "execute", None) is None or not callable(cls.execute):  # type: ignore[attr-defined]
        raise ConfigurationError(
            f"task class {cls.__qualname__} has no execute method; define "
            "def execute(self, ...) (or async def) with the task's parameters"
        )
    params = list(inspect.signature(cls).parameters.values())
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params)
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    needed = {p.name for p in params if p.default is p.empty and p.name in names}
    extra = sorted(set(deps) - names) if not takes_any else []
    missing = sorted(needed - set(deps))
    if extra or missing:
        raise ConfigurationError(
            f"task class {cls.__qualname__}: __init__ takes {sorted(names) or 'nothing'} and "
            f"deps declares {sorted(deps) or 'nothing'}"
            + (f"; nothing passes {', '.join(missing)}" if missing else "")
            + (f"; __init__ takes no {', '.join(extra)}" if extra else "")
            + ". Each entry of deps is passed to __init__ by its name."
        )


# --- running --------------------------------------------------------------------------------


def _runner(cls: type[Any]) -> Callable[..., Any]:
    """The function the worker calls for a job: build the class from the job's dependencies,
    then `execute`. Its signature is `execute`'s with `ctx` first and without `self`, so the
    task's arguments, checks and JSON schema are those of `execute`."""
    execute = cls.execute
    params = list(inspect.signature(execute).parameters.values())[1:]  # without self
    wants_context = bool(params) and is_context_param(params[0])
    own = params[1:] if wants_context else params
    context = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_ONLY, annotation=Context)

    def build(ctx: Context) -> Any:
        return cls(**ctx.deps)

    if inspect.iscoroutinefunction(execute):

        async def run(ctx: Context, /, *args: Any, **kwargs: Any) -> Any:
            instance = build(ctx)
            if wants_context:
                return await instance.execute(ctx, *args, **kwargs)
            return await instance.execute(*args, **kwargs)

    else:

        def run(ctx: Context, /, *args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            instance = build(ctx)
            if wants_context:
                return instance.execute(ctx, *args, **kwargs)
            return instance.execute(*args, **kwargs)

    run.__signature__ = inspect.signature(execute).replace(parameters=[context, *own])  # type: ignore[attr-defined]
    # Type hints of `execute` (the HTTP API's argument schema) resolve in its own module.
    run.__annotations__ = dict(getattr(execute, "__annotations__", {}))
    run.__wrapped__ = execute  # type: ignore[attr-defined]
    run.__name__, run.__qualname__ = cls.__name__, cls.__qualname__
    run.__module__, run.__doc__ = cls.__module__, cls.__doc__
    return run
