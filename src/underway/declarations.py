"""Declaring what an app runs: tasks (`@app.task`), schedules (`@app.periodic`,
`app.schedule`) and lifecycle hooks. Pure: it fills the app's `Registry` and does no I/O."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, overload

from .context import Context
from .errors import ConfigurationError, InvalidArguments
from .producer import Producer
from .registry import Lifespan, Registry
from .retry import Backoff
from .schedule import CatchUp, Cron, Every, Overlap, Rule, Schedule, TenantLister
from .schedule_tenants import static_tenants
from .task_classes import ClassTask, Executes, ExecutesWithContext, class_task
from .tasks import Options, Task

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])
L = TypeVar("L", bound=Lifespan)


class TaskDecorator(Protocol):
    """What `@app.task(...)` returns. A first parameter taking the Context is not part of the
    enqueue signature: `enqueue` takes the other parameters."""

    @overload
    def __call__(self, fn: Callable[Concatenate[Context, P], R], /) -> Task[P, R]: ...

    @overload
    def __call__(self, fn: Callable[P, R], /) -> Task[P, R]: ...


#: the options `@app.task(...)` takes; anything else is refused with their names
TASK_OPTIONS = frozenset(
    {"name", "queue", "priority", "max_attempts", "timeout", "retry", "no_retry_on", "title",
     "deps", "status_message"}
)  # fmt: skip

#: the options `@app.periodic(...)` takes besides the task options
PERIODIC_OPTIONS = (
    "every", "cron", "timezone", "initial_delay", "first_after_boot", "catch_up", "max_catch_up",
    "misfire_grace", "overlap", "args", "schedule_name", "tenant", "tenants",
)  # fmt: skip

#: what `tenants=` takes: the tenants, or a function listing them at each slot
Tenants = Iterable[str] | TenantLister


class Declarations:
    """The declaring half of `App`: everything here only fills `registry`."""

    registry: Registry
    producer: Producer

    # --- registering tasks --------------------------------------------------------------------

    @overload
    def task(self, fn: Callable[Concatenate[Context, P], R], /) -> Task[P, R]: ...

    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        queue: str = "default",
        priority: int = 0,
        max_attempts: int = 4,
        timeout: float | None = None,
        retry: Backoff | None = None,
        no_retry_on: Sequence[type[BaseException]] = (),
        title: str | None = None,
        deps: Mapping[str, Callable[..., Any]] | None = None,
        status_message: str | None = None,
    ) -> TaskDecorator: ...

    def task(
        self, fn: Callable[..., Any] | None = None, /, **options: Any
    ) -> Task[P, R] | TaskDecorator:
        """Register a sync or async function as a task.

        The function receives a `Context` only if its first parameter is named `ctx` or
        annotated `Context`; otherwise it stays a plain function you can also call directly.
        `name` defaults to `module.qualname`. Errors of the `no_retry_on` types (and of
        `underway.PermanentError`) fail the job at once.

        `deps` maps names to factories opened for each job and closed after it (a value, a
        context manager, or a generator that yields the value); the task reaches them as
        `ctx.deps.name`. `status_message` is what a job shows from enqueue until the task
        reports one (`options(status_message=...)` overrides it per job).
        """

        unknown = sorted(set(options) - TASK_OPTIONS)
        if unknown:
            raise ConfigurationError(
                f"unknown task option(s) {', '.join(unknown)}; a task takes "
                f"{', '.join(sorted(TASK_OPTIONS))}"
            )

        def register(func: Callable[P, R]) -> Task[P, R]:
            handle: Task[P, R] = Task(
                func,
                app=self.producer,
                name=options.get("name") or _default_name(func),
                queue=options.get("queue", "default"),
                priority=options.get("priority", 0),
                max_attempts=options.get("max_attempts", 4),
                timeout=options.get("timeout"),
                retry=options.get("retry") or Backoff(),
                no_retry_on=tuple(options.get("no_retry_on", ())),
                title=options.get("title"),
                deps=options.get("deps"),
                status_message=options.get("status_message"),
            )
            self.registry.add_task(handle)
            return handle

        return register(fn) if fn is not None else register  # type: ignore[return-value]

    @overload
    def task_class(
        self, cls: type[ExecutesWithContext[P, R]], /, **overrides: Any
    ) -> ClassTask[P, R]: ...

    @overload
    def task_class(self, cls: type[Executes[P, R]], /, **overrides: Any) -> ClassTask[P, R]: ...

    def task_class(self, cls: type[Any], /, **overrides: Any) -> ClassTask[Any, Any]:
        """Register a subclass of `underway.TaskClass` as a task. Its class attributes are
        its settings; keyword arguments here override them (`queue=`, `max_attempts=`, any
        option of `@app.task`). For each job a worker opens the class's `deps`, builds the
        class with them as keyword arguments, and calls `execute` with the job's arguments;
        `enqueue` takes the parameters of `execute`, typed."""
        handle = class_task(cls, overrides, self.producer)
        self.registry.add_task(handle)
        return handle

    # --- schedules ----------------------------------------------------------------------------

    def periodic(
        self,
        *,
        every: timedelta | float | None = None,
        cron: str | None = None,
        timezone: str = "UTC",
        initial_delay: timedelta | float = 0.0,
        first_after_boot: timedelta | float | None = None,
        catch_up: CatchUp | str = CatchUp.LATEST,
        max_catch_up: int = 100,
        misfire_grace: timedelta | float = 60.0,
        overlap: Overlap | str = Overlap.ALLOW,
        args: Mapping[str, Any] | None = None,
        schedule_name: str | None = None,
        tenant: str | None = None,
        tenants: Tenants | None = None,
        **task_options: Any,
    ) -> TaskDecorator:
        """Register a task and run it on a rule: `every=` an interval, or `cron=` an expression
        in `timezone`. It stays an ordinary task that can also be enqueued by hand.

        >>> @app.periodic(every=timedelta(minutes=5), initial_delay=timedelta(seconds=30))
        ... async def monitor_campaigns(ctx): ...
        >>> @app.periodic(cron="0 3 * * *", timezone="Europe/Berlin", catch_up="skip")
        ... def nightly_report(): ...

        `catch_up` says what happens to slots missed while nothing ran ("latest": run once;
        "all": run each, at most `max_catch_up`; "skip": none); a slot is missed once it is
        `misfire_grace` late. `overlap` ("allow", "skip", "wait") says what a slot does while
        the previous run is unfinished. Jobs carry `tenant`; `tenants=` (a list, or a function
        returning one at each slot) fires a job per tenant at each slot instead. Other keywords
        are task options. `first_after_boot` counts the first slot from each scheduler start.
        """
        _refuse_unknown_periodic_options(task_options)
        _rule(every, cron, timezone, initial_delay, first_after_boot)  # refused before the task
        _policies(catch_up, overlap)
        _check_tenant(tenant)
        listed = _tenants(tenant, tenants)

        def register(func: Callable[P, R]) -> Task[P, R]:
            handle: Task[P, R] = self.task(**task_options)(func)
            self.schedule(
                handle, every=every, cron=cron, timezone=timezone, initial_delay=initial_delay,
                first_after_boot=first_after_boot, catch_up=catch_up, max_catch_up=max_catch_up,
                misfire_grace=misfire_grace, overlap=overlap, args=args, name=schedule_name,
                tenant=tenant, tenants=listed,
            )  # fmt: skip
            return handle

        return register  # type: ignore[return-value]

    def schedule(
        self,
        task: Task[Any, Any] | str,
        *,
        every: timedelta | float | None = None,
        cron: str | None = None,
        timezone: str = "UTC",
        initial_delay: timedelta | float = 0.0,
        first_after_boot: timedelta | float | None = None,
        catch_up: CatchUp | str = CatchUp.LATEST,
        max_catch_up: int = 100,
        misfire_grace: timedelta | float = 60.0,
        overlap: Overlap | str = Overlap.ALLOW,
        args: Mapping[str, Any] | None = None,
        name: str | None = None,
        tenant: str | None = None,
        tenants: Tenants | None = None,
        stored: bool = False,
    ) -> Schedule:
        """Run an existing task on a rule, for rules that come from settings at run time:
        `app.schedule(cleanup, every=settings.cleanup_interval)`. Calling it again for the
        same name replaces the rule. The jobs it fires carry `tenant`; with `tenants=` each
        slot fires one job per tenant instead (a list, or a function, sync or async, called at
        each slot to list them), never two for one tenant and slot. `stored=True` puts it in
        the store instead (add or update): every scheduler fires it, also one whose code never
        declared it, until `app.remove_schedule(name)`; its tenants must then be a list."""
        handle = self.get_task(task) if isinstance(task, str) else task
        rule = _rule(every, cron, timezone, initial_delay, first_after_boot)
        catch_up, overlap = _policies(catch_up, overlap)
        if args is not None and not isinstance(args, Mapping):
            raise InvalidArguments(
                f"args must map argument names to values (args={{'name': value}}), "
                f"got {type(args).__name__} {args!r}"
            )
        if args:
            handle.new_job((), args, Options())  # refuse bad arguments now, not at the slot
        _check_tenant(tenant)
        schedule = Schedule(
            name=name or handle.name, task=handle.name, rule=rule, catch_up=CatchUp(catch_up),
            max_catch_up=max_catch_up, misfire_grace=_seconds(misfire_grace),
            overlap=Overlap(overlap), args=dict(args or {}), tenant=tenant,
            tenants=_tenants(tenant, tenants),
        )  # fmt: skip
        if stored:
            return self._put_schedule(schedule)
        self.registry.add_schedule(schedule)
        return schedule

    def _put_schedule(self, schedule: Schedule) -> Schedule:
        raise NotImplementedError  # App's (schedule_control.py): it needs the store

    # --- application lifecycle ----------------------------------------------------------------

    def on_startup(self, fn: F) -> F:
        """Run `fn()` (or `fn(app)`; sync or async) when a worker or scheduler starts, before it
        takes any job: open pools and clients here and keep them on `app.state`."""
        self.registry.on_startup.append(fn)
        return fn

    def on_shutdown(self, fn: F) -> F:
        """Run `fn()` (or `fn(app)`) when a worker or scheduler stops, after its last job."""
        self.registry.on_shutdown.append(fn)
        return fn

    def lifespan(self, fn: L) -> L:
        """Register an async context manager factory `fn(app)` entered at worker start and
        exited at stop (`@app.lifespan` over an `@asynccontextmanager` function)."""
        self.registry.lifespans.append(fn)
        return fn

    def get_task(self, name: str) -> Task[Any, Any]:
        """The task registered as `name` (`UnknownTask` names the registered ones)."""
        return self.registry.task(name)


def _refuse_unknown_periodic_options(task_options: Mapping[str, Any]) -> None:
    unknown = sorted(set(task_options) - TASK_OPTIONS)
    if unknown:
        raise ConfigurationError(
            f"unknown option(s) {', '.join(unknown)} for @app.periodic; it takes "
            f"{', '.join(PERIODIC_OPTIONS)} and the task options "
            f"{', '.join(sorted(TASK_OPTIONS))}"
        )


def _rule(
    every: timedelta | float | None,
    cron: str | None,
    timezone: str,
    initial_delay: timedelta | float,
    first_after_boot: timedelta | float | None = None,
) -> Rule:
    if (every is None) == (cron is None):
        raise ConfigurationError("give a schedule exactly one of every=... or cron=...")
    boot = None if first_after_boot is None else _seconds(first_after_boot)
    if every is not None:
        return Every(_seconds(every), _seconds(initial_delay), boot)
    if boot is not None:
        raise ConfigurationError(
            "first_after_boot is for every=... schedules; a cron rule's slots are wall-clock times"
        )
    assert cron is not None
    return Cron(cron, timezone)


def _policies(catch_up: CatchUp | str, overlap: Overlap | str) -> tuple[CatchUp, Overlap]:
    try:
        return CatchUp(catch_up), Overlap(overlap)
    except ValueError:
        raise ConfigurationError(
            f"catch_up must be one of {[c.value for c in CatchUp]} and overlap one of "
            f"{[o.value for o in Overlap]}; got catch_up={catch_up!r}, overlap={overlap!r}"
        ) from None


def _check_tenant(tenant: object) -> None:
    if tenant is not None and (not isinstance(tenant, str) or not tenant):
        raise ConfigurationError(
            f"a schedule's tenant must be a non-empty string or None, got {tenant!r}"
        )


def _tenants(tenant: str | None, tenants: Tenants | None) -> tuple[str, ...] | TenantLister | None:
    if tenants is None:
        return None
    if tenant is not None:
        raise ConfigurationError(
            "give a schedule tenant= (one tenant for all its jobs) or tenants= (a job per "
            "tenant at each slot), not both"
        )
    return tenants if callable(tenants) else static_tenants(tenants)


def _default_name(func: Callable[..., Any]) -> str:
    qualname = getattr(func, "__qualname__", None)
    if qualname is None:
        raise ConfigurationError(
            f"cannot name the task {func!r}: it has no __qualname__ (a callable object?); "
            "pass name=... to @app.task"
        )
    return f"{func.__module__}.{qualname}"


def _seconds(value: timedelta | float) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(
            f"a duration must be a number of seconds or a timedelta, got {value!r}"
        )
    return float(value)
