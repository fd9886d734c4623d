"""Tasks declared as classes (`underway.TaskClass`, `app.task_class`): a fresh instance per job
built from that job's dependencies, `execute` sync or async with or without `ctx`, settings as
class attributes that `task_class(...)` overrides, a default status message, and the refusals
of what a class gets wrong."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import underway
from underway import App, Backoff, ConfigurationError, Context, Job, Status

MakeApp = Callable[..., App]
Drain = Callable[..., int]
WaitFor = Callable[..., Any]


class Storage:
    """Stands for a per-job resource: records whether it was closed."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.closed = False


def storage_factory(log: list[str]) -> Callable[[], Iterator[Storage]]:
    def open_storage() -> Iterator[Storage]:
        storage = Storage(log)
        log.append("open")
        yield storage
        storage.closed = True
        log.append("close")

    return open_storage


def finished(app: App, job: Job) -> Job:
    current = app.get_job(job.id)
    assert current is not None
    return current


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_each_job_gets_a_fresh_instance_built_from_its_own_dependencies(
    fast_app: MakeApp, drain: Drain, kind: str
) -> None:
    app = fast_app()
    log: list[str] = []
    # The instances themselves, not their ids: a finished job's instance may be freed, and a
    # later one may then get its address, so ids alone can repeat (a full run failed on it).
    instances: list[object] = []

    class Copy(underway.TaskClass):
        name = "files.copy"
        deps = {"storage": storage_factory(log)}

        def __init__(self, storage: Storage) -> None:
            self.storage = storage
            instances.append(self)

        def execute(self, ctx: Context, src: str, dst: str) -> str:
            assert not self.storage.closed  # open for the whole job
            ctx.report_progress(1.0, f"copied {src}")
            return f"{src}->{dst}"

    class AsyncCopy(Copy):
        async def execute(self, ctx: Context, src: str, dst: str) -> str:
            return Copy.execute(self, ctx, src, dst)

    copy = app.task_class(Copy if kind == "sync" else AsyncCopy)
    jobs = [copy.enqueue(src=f"a{i}", dst=f"b{i}") for i in range(3)]
    assert drain(app) == 3
    assert [finished(app, j).result for j in jobs] == [f"a{i}->b{i}" for i in range(3)]
    assert finished(app, jobs[0]).status_message == "copied a0"
    assert len({id(i) for i in instances}) == 3  # one instance per job (all still alive)
    assert log == ["open", "close"] * 3  # each job's scope opened and closed around it


def test_execute_without_ctx_takes_only_the_tasks_arguments(
    fast_app: MakeApp, drain: Drain
) -> None:
    app = fast_app()

    class Scan(underway.TaskClass):
        def execute(self, root: str, depth: int = 1) -> list[str]:
            return [root] * depth

    scan = app.task_class(Scan)
    assert scan.name == f"{__name__}.{Scan.__qualname__}"
    job = scan.enqueue("r", depth=2)
    assert job.args == {"root": "r", "depth": 2}
    drain(app)
    assert finished(app, job).result == ["r", "r"]


def test_class_attributes_are_the_tasks_settings_and_task_class_overrides_them(
    make_app: MakeApp,
) -> None:
    app = make_app()

    class Report(underway.TaskClass):
        queue = "reports"
        priority = 3
        max_attempts = 2
        timeout = 30.0
        retry = Backoff(base=5, jitter=False)
        no_retry_on = (KeyError,)
        title = "Monthly report"
        status_message = "Waiting for a worker"

        def execute(self) -> None: ...

    report = app.task_class(Report, name="reports.monthly", queue="slow")
    assert (report.name, report.queue, report.priority, report.max_attempts) == (
        "reports.monthly", "slow", 3, 2,
    )  # fmt: skip
    assert (report.timeout, report.retry, report.no_retry_on) == (30.0, Backoff(5, jitter=False),
                                                                  (KeyError,))  # fmt: skip
    job = report.enqueue()
    assert (job.title, job.status_message, job.queue) == (
        "Monthly report", "Waiting for a worker", "slow",
    )  # fmt: skip
    assert app.get_task("reports.monthly") is report


def test_retry_settings_as_attributes_steer_failures(fast_app: MakeApp, drain: Drain) -> None:
    app = fast_app()
    calls: list[str] = []

    class Flaky(underway.TaskClass):
        max_attempts = 2
        retry = Backoff(base=0.01, max=0.01, jitter=False)
        no_retry_on = (KeyError,)

        def execute(self, error: str) -> None:
            calls.append(error)
            raise KeyError(error) if error == "key" else ValueError(error)

    flaky = app.task_class(Flaky)
    retried, permanent = flaky.enqueue("value"), flaky.enqueue("key")
    while drain(app):
        pass
    assert finished(app, retried).status is Status.FAILED
    assert finished(app, retried).attempt == 2
    assert finished(app, permanent).attempt == 1  # no_retry_on: failed at once
    assert sorted(calls) == ["key", "value", "value"]


def test_a_class_task_can_be_cancelled_while_it_runs(
    fast_app: MakeApp, start_worker: Callable[..., Any], wait_for: WaitFor
) -> None:
    app = fast_app()
    started = threading.Event()

    class Wait(underway.TaskClass):
        def execute(self, ctx: Context) -> str:
            started.set()
            ctx.wait_cancelled(10)
            return "stopped early" if ctx.cancelled else "ran out"

    job = app.task_class(Wait).enqueue()
    worker = start_worker(app)
    assert started.wait(10)
    app.cancel(job.id)
    done = app.wait(job.id, timeout=10)
    worker.stop()
    assert done.status is Status.CANCELLED


def test_the_status_message_shows_until_the_task_reports(
    fast_app: MakeApp, start_worker: Callable[..., Any], wait_for: WaitFor
) -> None:
    app = fast_app()
    release, running = threading.Event(), threading.Event()

    class Slow(underway.TaskClass):
        status_message = "Pending"

        def execute(self, ctx: Context) -> None:
            running.set()
            release.wait(10)
            ctx.report_status("copying")

    job = app.task_class(Slow).enqueue()
    assert finished(app, job).status_message == "Pending"
    worker = start_worker(app)
    assert running.wait(10)
    assert finished(app, job).status_message == "Pending"  # running, nothing reported yet
    release.set()
    done = app.wait(job.id, timeout=10)
    worker.stop()
    assert done.status_message == "copying"


# --- what a class gets wrong --------------------------------------------------------------------


def test_a_misspelt_setting_is_refused_when_the_class_is_defined() -> None:
    with pytest.raises(ConfigurationError, match="unknown setting max_attempt = 3 "
                       r"\(did you mean max_attempts\?\)"):  # fmt: skip

        class Typo(underway.TaskClass):
            max_attempt = 3

            def execute(self) -> None: ...


def test_helpers_of_ones_own_pass_when_private_or_upper_case() -> None:
    class Helpers(underway.TaskClass):
        CHUNK = 1 << 20
        _cache: dict[str, int] = {}

        @property
        def size(self) -> int:
            return self.CHUNK

        def execute(self) -> None: ...

    assert Helpers.CHUNK == 1 << 20


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("queue", 3, "queue must be a string, got 3"),
        ("max_attempts", "3", "max_attempts must be a whole number"),
        ("retry", 5, "retry must be an underway.Backoff or None"),
        ("no_retry_on", (ValueError, "x"), "no_retry_on holds 'x', not an exception class"),
        ("deps", {"db": 1}, r"deps\['db'\] is 1, not a factory"),
        ("status_message", 7, "status_message must be a string or None"),
    ],
)
def test_a_setting_of_the_wrong_type_is_refused_at_registration(
    make_app: MakeApp, setting: str, value: Any, message: str
) -> None:
    class Bad(underway.TaskClass):
        def execute(self) -> None: ...

    with pytest.raises(ConfigurationError, match=f"task class .*Bad: {message}"):
        make_app().task_class(Bad, **{setting: value})


def test_dependencies_must_match_the_constructor(make_app: MakeApp) -> None:
    app = make_app()

    class NeedsDb(underway.TaskClass):
        def __init__(self, db: object) -> None: ...

        def execute(self) -> None: ...

    with pytest.raises(ConfigurationError, match="nothing passes db"):
        app.task_class(NeedsDb)
    with pytest.raises(ConfigurationError, match="__init__ takes no cache"):
        app.task_class(NeedsDb, deps={"db": object, "cache": dict})
    assert app.task_class(NeedsDb, deps={"db": object}).deps == {"db": object}


def test_a_class_that_is_not_a_task_class_or_has_no_execute_is_refused(
    make_app: MakeApp,
) -> None:
    app = make_app()

    class Plain:
        def execute(self) -> None: ...

    class NoExecute(underway.TaskClass):
        pass

    with pytest.raises(ConfigurationError, match=r"subclass of underway\.TaskClass"):
        app.task_class(Plain)
    with pytest.raises(ConfigurationError, match="has no execute method"):
        app.task_class(NoExecute)
    with pytest.raises(ConfigurationError, match="unknown task option"):
        app.task_class(NoExecute, max_attempt=2)


def test_a_class_task_is_enqueued_not_called(make_app: MakeApp) -> None:
    class Copy(underway.TaskClass):
        def execute(self, src: str) -> None: ...

    copy = make_app().task_class(Copy)
    with pytest.raises(ConfigurationError, match="enqueue it, or build the class yourself"):
        copy("a")


def test_the_http_argument_schema_of_a_class_task_is_that_of_execute(make_app: MakeApp) -> None:
    from underway.web.arguments import arguments_schema

    class Copy(underway.TaskClass):
        async def execute(self, ctx: Context, src: str, size: int = 0) -> int:
            return size

    schema = arguments_schema(make_app().task_class(Copy))
    assert schema["properties"] == {
        "src": {"title": "Src", "type": "string"},
        "size": {"default": 0, "title": "Size", "type": "integer"},
    }
    assert schema["required"] == ["src"]
