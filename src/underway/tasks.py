"""Tasks: a registered function plus its options, and the typed handle used to enqueue it.

Declaring a task does no I/O; the handle reaches the store only through its app when you
enqueue.
"""

from __future__ import annotations

import inspect
import json
import math
import typing
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, ParamSpec, Protocol, TypedDict, TypeVar, Unpack

from . import encoding
from .errors import ArgumentsTooLarge, ConfigurationError, InvalidArguments
from .ids import as_job_id, uuid7
from .model import Job
from .retry import Backoff
from .secret import Sealer, Secret, holds_secret
from .stores.messages import NewJob

P = ParamSpec("P")
R = TypeVar("R")


class Enqueuer(Protocol):
    """What a task handle needs to store its jobs (the app's `Producer`)."""

    @property
    def max_args_bytes(self) -> int: ...

    @property
    def sealer(self) -> Sealer: ...

    def check_callback_url(self, url: str) -> None: ...

    def insert(self, jobs: list[NewJob], connection: Any = None) -> list[Job]: ...

    async def insert_async(self, jobs: list[NewJob], connection: Any = None) -> list[Job]: ...


@dataclass(frozen=True, slots=True)
class Options:
    """Per-enqueue options; None means "the task's default"."""

    queue: str | None = None
    priority: int | None = None
    delay: float | None = None
    run_at: datetime | None = None
    max_attempts: int | None = None
    tenant: str | None = None
    callback_url: str | None = None
    key: str | None = None
    title: str | None = None
    status_message: str | None = None
    connection: Any = None
    id: uuid.UUID | None = None


class OptionArgs(TypedDict, total=False):
    """The keywords of `task.options(...)`: a misspelled one is a type error, and
    `InvalidArguments` at run time. None means "the task's default"."""

    queue: str | None
    priority: int | None
    delay: float | timedelta | None
    run_at: datetime | None
    max_attempts: int | None
    tenant: str | None
    callback_url: str | None
    key: str | None
    title: str | None
    status_message: str | None
    connection: Any
    id: uuid.UUID | str | None


#: the names `task.options(...)` takes
OPTION_NAMES = OptionArgs.__optional_keys__


@dataclass(frozen=True, slots=True)
class Prepared(Generic[P, R]):
    """One call of a task with its own options, checked and encoded, for `enqueue_many`:
    `task.options(tenant="a", key="k1").prepare(x=1)`."""

    task: Task[P, R]
    job: NewJob


Item = Prepared[P, R] | Mapping[str, Any] | tuple[Any, ...]


class Task(Generic[P, R]):
    """A registered task. Call it to run the function directly; `enqueue` to run it in a worker.

    >>> @app.task(queue="mail")
    ... def send(to: str) -> None: ...
    >>> job = send.enqueue(to="a@example.com")
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        app: Enqueuer,
        name: str,
        queue: str,
        priority: int,
        max_attempts: int,
        timeout: float | None,
        retry: Backoff,
        no_retry_on: tuple[type[BaseException], ...],
        title: str | None,
        deps: Mapping[str, Callable[..., Any]] | None = None,
        status_message: str | None = None,
    ) -> None:
        _check_task_options(name, max_attempts, priority, queue, title, timeout)
        try:
            check_options(status_message=status_message)
        except InvalidArguments as exc:
            raise ConfigurationError(f"task {name}: {exc}") from None
        self.fn = fn
        self.app = app
        self.name = name
        self.queue = queue
        self.priority = priority
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.retry = retry
        self.no_retry_on = no_retry_on
        self.title = title or name
        #: the status message a job shows from enqueue until the task reports one
        self.status_message = status_message
        self.deps = dict(deps or {})
        # An object whose __call__ is `async def` is an async task too.
        self.is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 - the method itself, not callable()
        )
        self._analyse(inspect.signature(fn))
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", name)

    def _analyse(self, signature: inspect.Signature) -> None:
        params = list(signature.parameters.values())
        self.wants_context = bool(params) and is_context_param(params[0])
        # The signature that callers' arguments are bound to: without the Context.
        self.signature = signature.replace(parameters=params[1:] if self.wants_context else params)
        # Fast path for the common call shape (keyword arguments, no *args/**kwargs):
        # checking names is much cheaper than Signature.bind, and bulk enqueue feels it.
        own = self.signature.parameters.values()
        self._keywords_only_ok = all(
            p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) for p in own
        )
        self._names = frozenset(self.signature.parameters)
        self._required = frozenset(
            p.name
            for p in own
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        )
        self._var_positional = next((p.name for p in own if p.kind is p.VAR_POSITIONAL), None)
        self._secret_params = _secret_parameters(self.fn, self.signature)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        result: R = self.fn(*args, **kwargs)
        return result

    def __repr__(self) -> str:
        return f"<Task {self.name} queue={self.queue}>"

    # --- enqueueing -------------------------------------------------------------------------

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """Store a job that runs this task with these arguments; returns it as `pending`."""
        return self.app.insert([self.new_job(args, kwargs, _DEFAULTS)])[0]

    async def enqueue_async(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """`enqueue` for async code: the store call does not block the event loop."""
        return (await self.app.insert_async([self.new_job(args, kwargs, _DEFAULTS)]))[0]

    def enqueue_many(self, calls: Iterable[Item[P, R]]) -> list[Job]:
        """Store many jobs in one transaction. Each item is a dict of keyword arguments, a
        tuple of positional ones, or a `Prepared` call carrying its own options
        (`task.options(tenant="a").prepare(...)`)."""
        return self.app.insert(self.new_jobs(calls, _DEFAULTS))

    async def enqueue_many_async(self, calls: Iterable[Item[P, R]]) -> list[Job]:
        """`enqueue_many` for async code: the store call does not block the event loop."""
        return await self.app.insert_async(self.new_jobs(calls, _DEFAULTS))

    def prepare(self, *args: P.args, **kwargs: P.kwargs) -> Prepared[P, R]:
        """This call, checked now, as an item for `enqueue_many` (with the task's defaults)."""
        return Prepared(self, self.new_job(args, kwargs, _DEFAULTS))

    def options(self, **options: Unpack[OptionArgs]) -> BoundTask[P, R]:
        """The same task with options for the next enqueue (queue, priority, delay, key...).
        `id` chooses the job's id (a UUID) instead of a new one; an id a job already has is
        refused with `JobExists`."""
        return BoundTask(self, with_options(_DEFAULTS, options))

    # --- building requests ------------------------------------------------------------------

    def new_job(self, args: tuple[Any, ...], kwargs: Mapping[str, Any], opts: Options) -> NewJob:
        if not args and self._keywords_only_ok and self._required <= kwargs.keys() <= self._names:
            arguments = dict(kwargs)
        else:
            try:
                arguments = dict(self.signature.bind(*args, **kwargs).arguments)
            except TypeError as exc:
                raise InvalidArguments(
                    f"arguments do not fit task {self.name}{self.signature}: {exc}"
                ) from None
            if self._var_positional is not None and self._var_positional in arguments:
                # *args arrive as a tuple; JSON keeps them as a list.
                arguments[self._var_positional] = list(arguments[self._var_positional])
        for name in self._secret_params:  # a str for a Secret parameter: over HTTP, say
            if isinstance(arguments.get(name), str):
                arguments[name] = Secret(arguments[name])
        if holds_secret(arguments):
            arguments = self.app.sealer.seal(arguments)
        args_json = encoding.dumps(arguments, f"argument of task {self.name}")
        limit = self.app.max_args_bytes
        if len(args_json) > limit // 4 and len(args_json.encode()) > limit:
            raise ArgumentsTooLarge(
                f"arguments of task {self.name} are {len(args_json.encode()):,} bytes of JSON, "
                f"over the limit of {limit:,} (setting max_args_bytes); store large data "
                "elsewhere and pass a reference"
            )
        if opts.callback_url is not None:
            self.app.check_callback_url(opts.callback_url)
        delay = opts.delay or 0.0
        return NewJob(
            id=opts.id or uuid7(),
            task=self.name,
            title=opts.title or self.title,
            # The job keeps its own copy: later changes to the caller's objects must not show.
            args=json.loads(args_json) if arguments else {},
            args_json=args_json,
            queue=opts.queue or self.queue,
            priority=self.priority if opts.priority is None else opts.priority,
            max_attempts=opts.max_attempts or self.max_attempts,
            delay=max(delay, 0.0),
            run_at=opts.run_at.astimezone(UTC) if opts.run_at else None,
            tenant=opts.tenant,
            callback_url=opts.callback_url,
            key=opts.key,
            status_message=opts.status_message or self.status_message,
            id_chosen=opts.id is not None,
        )

    def new_jobs(self, calls: Iterable[Item[P, R]], opts: Options) -> list[NewJob]:
        jobs = []
        for call in calls:
            if isinstance(call, tuple):
                jobs.append(self.new_job(call, {}, opts))
            elif isinstance(call, Mapping):
                jobs.append(self.new_job((), call, opts))
            elif isinstance(call, Prepared) and call.task is self:
                # A fresh id, unless chosen: the same prepared call may be enqueued again.
                jobs.append(call.job if call.job.id_chosen else replace(call.job, id=uuid7()))
            elif isinstance(call, Prepared):
                raise InvalidArguments(
                    f"enqueue_many of task {self.name} got a call prepared for task "
                    f"{call.task.name}; enqueue each task's calls with its own enqueue_many"
                )
            else:
                raise InvalidArguments(
                    "enqueue_many takes dicts of keyword arguments, tuples of positional ones "
                    f"or task.prepare(...) calls, got {type(call).__name__}"
                )
        return jobs

    def bind_stored(self, arguments: Mapping[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Turn stored arguments back into a call; raises TypeError when they no longer fit."""
        bound = inspect.BoundArguments(self.signature, dict(arguments))
        unknown = set(arguments) - set(self.signature.parameters)
        if unknown:
            raise TypeError(f"unexpected argument(s) {sorted(unknown)}")
        self.signature.bind(*bound.args, **bound.kwargs)  # validates required ones are there
        return bound.args, bound.kwargs


class BoundTask(Generic[P, R]):
    """A task with enqueue options applied: `task.options(priority=5).enqueue(...)`."""

    def __init__(self, task: Task[P, R], opts: Options) -> None:
        self.task = task
        self.opts = opts

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        job = self.task.new_job(args, kwargs, self.opts)
        return self.task.app.insert([job], self.opts.connection)[0]

    async def enqueue_async(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        job = self.task.new_job(args, kwargs, self.opts)
        return (await self.task.app.insert_async([job], self.opts.connection))[0]

    def enqueue_many(self, calls: Iterable[Item[P, R]]) -> list[Job]:
        """Store many jobs in one transaction (on `connection`, if given): dicts and tuples
        get these options; a `Prepared` call keeps its own."""
        return self.task.app.insert(self._many(calls), self.opts.connection)

    async def enqueue_many_async(self, calls: Iterable[Item[P, R]]) -> list[Job]:
        """`enqueue_many` for async code: the store call does not block the event loop."""
        return await self.task.app.insert_async(self._many(calls), self.opts.connection)

    def prepare(self, *args: P.args, **kwargs: P.kwargs) -> Prepared[P, R]:
        """This call with these options, checked now, as an item for `enqueue_many`."""
        if self.opts.connection is not None:
            raise InvalidArguments(
                "connection= belongs to the enqueue_many call, not to one item: "
                "task.options(connection=conn).enqueue_many(items)"
            )
        return Prepared(self.task, self.task.new_job(args, kwargs, self.opts))

    def _many(self, calls: Iterable[Item[P, R]]) -> list[NewJob]:
        if self.opts.key is not None:
            raise InvalidArguments(
                "a unique key names one job; it cannot apply to all of enqueue_many: give each "
                'item its own, task.options(key="k1").prepare(...)'
            )
        return self.task.new_jobs(calls, self.opts)

    def options(self, **options: Unpack[OptionArgs]) -> BoundTask[P, R]:
        """These options with some changed: `task.options(queue="q").options(priority=5)`."""
        return BoundTask(self.task, with_options(self.opts, options))


def with_options(base: Options, changes: Mapping[str, Any]) -> Options:
    """`base` with `changes` applied, each checked (InvalidArguments names the valid ones)."""
    unknown = sorted(set(changes) - OPTION_NAMES)
    if unknown:
        raise InvalidArguments(
            f"unknown enqueue option(s) {', '.join(unknown)}; the options are "
            f"{', '.join(sorted(OPTION_NAMES))}"
        )
    values = dict(changes)
    if isinstance(values.get("delay"), timedelta):
        values["delay"] = values["delay"].total_seconds()
    run_at, max_attempts = values.get("run_at"), values.get("max_attempts")
    if run_at is not None and not isinstance(run_at, datetime):
        raise InvalidArguments(f"run_at must be a datetime, got {run_at!r}")
    if run_at is not None and run_at.tzinfo is None:
        raise InvalidArguments("run_at must be timezone-aware, e.g. datetime.now(timezone.utc)")
    if max_attempts is not None and (
        isinstance(max_attempts, bool)
        or not isinstance(max_attempts, int)
        or not 1 <= max_attempts <= INT32_MAX
    ):
        raise InvalidArguments(
            f"max_attempts must be a whole number between 1 and {INT32_MAX}, got {max_attempts!r}"
        )
    if values.get("id") is not None:
        values["id"] = as_job_id(values["id"], InvalidArguments)
    texts = {name: values.get(name) for name in _TEXT_OPTIONS}
    check_options(priority=values.get("priority"), delay=values.get("delay"), **texts)
    return replace(base, **values)


_DEFAULTS = Options()
#: the options that are text, checked by `check_options`
_TEXT_OPTIONS = ("queue", "tenant", "key", "title", "callback_url", "status_message")
INT32_MAX = 2**31 - 1
#: the longest delay accepted: far enough for any schedule, short of datetime's year 9999
MAX_DELAY_SECONDS = 100 * 365 * 86400.0


#: the longest queue, tenant, key or task name: PostgreSQL's b-tree indexes hold entries of up
#: to about 2.7 KB, so anything longer worked on SQLite and failed on PostgreSQL
MAX_NAME_BYTES = 1000
#: the options that are indexed, and so are names
_NAMES = ("queue", "tenant", "key")


def check_options(
    priority: int | None = None, delay: float | None = None, **texts: str | None
) -> None:
    """Refuse values every store cannot hold, with a message instead of a driver error."""
    if priority is not None:
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise InvalidArguments(f"priority must be a whole number, got {priority!r}")
        if not -INT32_MAX - 1 <= priority <= INT32_MAX:
            raise InvalidArguments(
                f"priority must fit in 32 bits (|priority| < 2**31), got {priority}"
            )
    if delay is not None and not (
        isinstance(delay, int | float)
        and not isinstance(delay, bool)
        and math.isfinite(delay)
        and delay <= MAX_DELAY_SECONDS
    ):
        raise InvalidArguments(
            f"delay must be a finite number of seconds up to {MAX_DELAY_SECONDS:.0f} "
            f"(or a timedelta), got {delay!r}"
        )
    for name, text in texts.items():
        if text is not None:
            _check_text(name, text)


def _check_text(name: str, text: str) -> None:
    if not isinstance(text, str):
        raise InvalidArguments(f"{name} must be a string, got {type(text).__name__} {text!r}")
    if "\x00" in text:
        raise InvalidArguments(f"{name} holds a NUL character (\\x00); remove it")
    if name in _NAMES and len(text) > MAX_NAME_BYTES // 4 and len(text.encode()) > MAX_NAME_BYTES:
        raise InvalidArguments(
            f"{name} is {len(text.encode()):,} bytes, over the limit of {MAX_NAME_BYTES:,}: "
            "it is indexed, and PostgreSQL cannot index longer values; hash a long key"
        )


def _check_task_options(
    name: str, max_attempts: int, priority: int, queue: str, title: str | None,
    timeout: float | None,
) -> None:  # fmt: skip
    if len(name.encode()) > MAX_NAME_BYTES:
        raise ConfigurationError(
            f"task name {name[:40]!r}... is {len(name.encode()):,} bytes, over the limit of "
            f"{MAX_NAME_BYTES:,} (it is indexed); give the task a shorter name="
        )
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int):
        raise ConfigurationError(f"task {name}: max_attempts must be a whole number")
    if not 1 <= max_attempts <= INT32_MAX:
        raise ConfigurationError(f"task {name}: max_attempts must be between 1 and {INT32_MAX}")
    try:
        check_options(priority=priority, queue=queue, title=title)
    except InvalidArguments as exc:
        raise ConfigurationError(f"task {name}: {exc}") from None
    if timeout is not None and timeout <= 0:
        raise ConfigurationError(f"task {name}: timeout must be > 0 seconds")


def is_context_param(param: inspect.Parameter) -> bool:
    if param.kind not in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
        return False
    if param.name == "ctx":
        return True
    annotation = param.annotation
    if isinstance(annotation, str):
        return annotation.rsplit(".", 1)[-1] == "Context"
    return getattr(annotation, "__name__", None) == "Context"


def _secret_parameters(fn: Callable[..., Any], signature: inspect.Signature) -> tuple[str, ...]:
    """The parameters annotated `Secret` (or `Secret | None`): a str given for one is sealed
    as a Secret, so an HTTP caller's value is stored as sealed as a Python caller's."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # a forward reference it cannot resolve: read the text instead
        hints = {}
    found = []
    for name, param in signature.parameters.items():
        hint = hints.get(name, param.annotation)
        if isinstance(hint, str):
            is_secret = any(part.strip().split(".")[-1] == "Secret" for part in hint.split("|"))
        else:
            is_secret = hint is Secret or Secret in typing.get_args(hint)
        if is_secret:
            found.append(name)
    return tuple(found)
