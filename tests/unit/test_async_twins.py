"""Every public call that touches the store has an `_async` twin: a coroutine function with the
same parameters whose awaited value is what the sync call returns. The calls that do not touch
the store are listed here with the reason they need no twin, so a new public method must be
put in one list or the other."""

from __future__ import annotations

import asyncio
import inspect
import re
import subprocess
import sys
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import underway
from underway import App, BoundTask, Page, Stats, Status, Task

#: App methods that touch the store, each with an `_async` twin
APP_STORE_CALLS = [
    "migrate",
    "close",
    "get_job",
    "list_jobs",
    "cancel",
    "retry",
    "wait",
    "stats",
    "stats_history",
    "deliveries",
    "queues",
    "pause_queue",
    "resume_queue",
    "set_queue_concurrency",
    "prune",
    "list_schedules",
    "pause_schedule",
    "resume_schedule",
    "trigger_schedule",
    "remove_schedule",
    "restart_schedule",
    "attempts",
    "workers",
    "create_key",
    "list_keys",
    "revoke_key",
    "authenticate",
    "delete_job",
    "retry_failed",
    "delete_failed",
]

#: App methods that need no twin, and why
APP_NO_TWIN = {
    "task": "declares a task: fills the registry, no I/O",
    "task_class": "declares a task from a class: fills the registry, no I/O",
    "periodic": "declares a task and its schedule: no I/O",
    "schedule": "declares a schedule: no I/O",
    "on_startup": "registers a hook: no I/O",
    "on_shutdown": "registers a hook: no I/O",
    "lifespan": "registers a lifespan: no I/O",
    "get_task": "reads the registry: no I/O",
    "on_update": "subscribes to in-process snapshots: no I/O",
    "watch": "an iterator, not a call: its twin watch_async is an async iterator (ITERATORS)",
    "scheduler": "builds a Scheduler object; its tick() is the blocking call, run() the async one",
    "run_worker": "runs its own event loop until stopped; async code awaits Worker(app).run()",
    "run_scheduler": "runs its own event loop until stopped; async code awaits Scheduler.run()",
}

#: Task methods that touch the store, each with an `_async` twin
TASK_STORE_CALLS = ["enqueue", "enqueue_many"]

TASK_NO_TWIN = {
    "options": "returns a BoundTask with the options applied: no I/O",
    "prepare": "checks and encodes one call for enqueue_many: no I/O",
    "new_job": "validates and encodes one enqueue request: no I/O",
    "new_jobs": "validates and encodes many enqueue requests: no I/O",
    "bind_stored": "turns stored arguments back into a call: no I/O",
}

BOUND_TASK_STORE_CALLS = ["enqueue", "enqueue_many"]

BOUND_TASK_NO_TWIN = {
    "options": "returns another BoundTask: no I/O",
    "prepare": "checks and encodes one call with these options for enqueue_many: no I/O",
}


def public_methods(cls: type) -> set[str]:
    """The public functions of `cls` (its own and inherited), without properties and the
    `_async` twins."""
    return {
        name
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and inspect.isfunction(member)
        and not name.endswith("_async")
    }  # fmt: skip


def async_methods(cls: type) -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and name.endswith("_async") and callable(member)
    }


CLASSES: list[tuple[type, list[str], dict[str, str]]] = [
    (App, APP_STORE_CALLS, APP_NO_TWIN),
    (Task, TASK_STORE_CALLS, TASK_NO_TWIN),
    (BoundTask, BOUND_TASK_STORE_CALLS, BOUND_TASK_NO_TWIN),
]
IDS = ["App", "Task", "BoundTask"]


@pytest.mark.parametrize(("cls", "store_calls", "no_twin"), CLASSES, ids=IDS)
def test_every_public_method_is_listed_as_a_store_call_or_as_needing_no_twin(
    cls: type, store_calls: list[str], no_twin: dict[str, str]
) -> None:
    methods = public_methods(cls)
    unlisted = methods - set(store_calls) - set(no_twin)
    assert not unlisted, (
        f"{cls.__name__} has public methods in neither list: {sorted(unlisted)}; put each in "
        "the store calls (and give it an _async twin) or in the no-twin list with a reason"
    )
    gone = (set(store_calls) | set(no_twin)) - methods
    assert not gone, f"listed, but {cls.__name__} has no such method: {sorted(gone)}"
    assert not set(store_calls) & set(no_twin)


def twin_pairs() -> Iterator[Any]:
    for cls, store_calls, _ in CLASSES:
        for name in store_calls:
            yield pytest.param(cls, name, id=f"{cls.__name__}.{name}")


@pytest.mark.parametrize(("cls", "name"), list(twin_pairs()))
def test_a_store_call_has_an_async_twin_with_the_same_parameters_and_result(
    cls: type, name: str
) -> None:
    sync = getattr(cls, name)
    twin = getattr(cls, f"{name}_async", None)
    assert twin is not None, f"{cls.__name__}.{name} touches the store but has no {name}_async"
    assert inspect.iscoroutinefunction(twin), f"{cls.__name__}.{name}_async is not async def"
    assert not inspect.iscoroutinefunction(sync), f"{cls.__name__}.{name} should block"

    sync_sig, twin_sig = inspect.signature(sync), inspect.signature(twin)
    assert next(iter(sync_sig.parameters)) == "self"
    assert _without_self(twin_sig) == _without_self(sync_sig), (
        f"{cls.__name__}.{name}_async{twin_sig} takes other parameters than {name}{sync_sig}"
    )
    # For `async def`, the annotation is what awaiting gives: it must be the sync result.
    assert _return_type(twin) == _return_type(sync), (
        f"{cls.__name__}.{name}_async returns {_return_type(twin)} when awaited, "
        f"{name} returns {_return_type(sync)}"
    )


@pytest.mark.parametrize(("cls", "store_calls", "no_twin"), CLASSES, ids=IDS)
def test_no_async_twin_is_left_without_its_sync_call(
    cls: type, store_calls: list[str], no_twin: dict[str, str]
) -> None:
    orphans = {name.removesuffix("_async") for name in async_methods(cls)} - set(store_calls)
    orphans -= set(ITERATORS.get(cls, ()))
    assert not orphans, f"{cls.__name__} has _async methods of no listed store call: {orphans}"


#: iterators over the store, each with an `_async` twin that is an async iterator
ITERATORS = {App: ["watch"]}


@pytest.mark.parametrize(("cls", "name"), [(c, n) for c, names in ITERATORS.items() for n in names])
def test_an_iterator_has_an_async_iterator_twin_with_the_same_parameters(
    cls: type, name: str
) -> None:
    sync, twin = getattr(cls, name), getattr(cls, f"{name}_async")
    assert inspect.isgeneratorfunction(sync), f"{cls.__name__}.{name} should be a generator"
    assert inspect.isasyncgenfunction(twin), f"{cls.__name__}.{name}_async is no async iterator"
    assert _without_self(inspect.signature(twin)) == _without_self(inspect.signature(sync))


def _without_self(sig: inspect.Signature) -> list[tuple[str, Any, Any, Any]]:
    return [
        (p.name, p.kind, p.default, p.annotation)
        for p in sig.parameters.values()
        if p.name != "self"
    ]


def _return_type(fn: Callable[..., Any]) -> Any:
    module = inspect.getmodule(inspect.unwrap(fn))
    return typing.get_type_hints(fn, vars(module) if module else None).get("return")


def test_the_type_checker_sees_each_twin_as_its_call_returning_an_awaitable(
    tmp_path: Path,
) -> None:
    """What mypy infers, not only what runtime introspection shows: the twin takes the same
    parameters (the helper `twin` must not lose them) and returns a Coroutine of the sync
    call's type."""
    pairs = [(cls.__name__, name) for cls, calls, _ in CLASSES for name in calls]
    lines = ["import underway"]
    for owner, name in pairs:
        lines += [
            f"reveal_type(underway.{owner}.{name})",
            f"reveal_type(underway.{owner}.{name}_async)",
        ]
    snippet = tmp_path / "twins_snippet.py"
    snippet.write_text("\n".join(lines) + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary",
         "--cache-dir", str(tmp_path / "mypy-cache"), str(snippet)],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    revealed = re.findall(r'Revealed type is "(.*)"', done.stdout)
    assert len(revealed) == 2 * len(pairs), done.stdout + done.stderr
    for (owner, name), sync, twin in zip(pairs, revealed[::2], revealed[1::2], strict=True):
        sync_params, sync_result = _callable_parts(sync)
        twin_params, twin_result = _callable_parts(twin)
        assert twin_params == sync_params, f"{owner}.{name}_async: {twin} vs {sync}"
        assert twin_result == f"typing.Coroutine[Any, Any, {sync_result}]", (
            f"{owner}.{name}_async: {twin} vs {sync}"
        )


def _callable_parts(revealed: str) -> tuple[list[str], str]:
    """The parameters after self, and the result, of a type mypy reveals as
    `def [P, R] (self: T, a: int =) -> R`."""
    text = revealed.removeprefix("def ")
    if text.startswith("["):
        text = text[_closing(text, 0) + 1 :].lstrip()
    end = _closing(text, 0)
    params, rest = _split_top_level(text[1:end]), text[end + 1 :]
    result = rest.removeprefix(" -> ") if rest else "None"
    return params[1:], result


_DEPTH = {"(": 1, "[": 1, ")": -1, "]": -1}


def _closing(text: str, start: int) -> int:
    depth = 0
    for i, char in enumerate(text[start:], start):
        depth += _DEPTH.get(char, 0)
        if depth == 0:
            return i
    raise AssertionError(f"unbalanced: {text}")


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        depth += _DEPTH.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    return [*parts, current.strip()] if current.strip() else parts


# --- the twins give the same answers as the sync calls, on every store ------------------------


def test_awaited_twins_give_the_same_answers_as_the_sync_calls(
    make_app: Callable[..., App],
) -> None:
    app = make_app()

    @app.task(name="tests.mail", queue="mail")
    def mail(to: str) -> None: ...

    @app.task(name="tests.report")
    def report(n: int) -> int:
        return n

    sent = mail.enqueue("a@example.com")
    mail.options(priority=3).enqueue(to="b@example.com")
    report.enqueue_many([(1,), {"n": 2}])
    app.cancel(sent.id)

    async def awaited() -> dict[str, Any]:
        one = await report.enqueue_async(3)
        many = await report.options(queue="slow").enqueue_many_async([(4,), (5,)])
        bound = await mail.options(tenant="t1").enqueue_async("c@example.com")
        listed = {
            "pending": await app.list_jobs_async(status="pending"),
            "mail": await app.list_jobs_async(task="tests.mail", limit=10),
            "slow": await app.list_jobs_async(queue="slow", status=Status.PENDING),
            "tenant": await app.list_jobs_async(tenant="t1"),
        }
        return {"one": one, "many": many, "bound": bound, "listed": listed}

    got = asyncio.run(awaited())
    assert got["one"].task == "tests.report" and got["one"].args == {"n": 3}
    assert [j.queue for j in got["many"]] == ["slow", "slow"]
    assert got["bound"].tenant == "t1"

    listed = got["listed"]
    assert all(isinstance(page, Page) for page in listed.values())
    assert _ids(listed["pending"]) == _ids(app.list_jobs(status="pending"))
    assert _ids(listed["mail"]) == _ids(app.list_jobs(task="tests.mail", limit=10))
    assert _ids(listed["slow"]) == _ids(app.list_jobs(queue="slow", status=Status.PENDING))
    assert _ids(listed["tenant"]) == _ids(app.list_jobs(tenant="t1")) == [got["bound"].id]
    assert len(listed["pending"].jobs) == 7  # 8 enqueued, one cancelled
    assert len(listed["mail"].jobs) == 3

    stats = asyncio.run(app.stats_async())
    assert isinstance(stats, Stats)
    assert stats.by_status == app.stats().by_status
    assert stats.by_task == app.stats().by_task
    assert stats.by_status.get("cancelled") == 1

    job = asyncio.run(app.get_job_async(sent.id))
    assert job == app.get_job(sent.id)
    assert job is not None and job.status is Status.CANCELLED
    assert asyncio.run(app.wait_async(sent.id, timeout=10)) == app.wait(sent.id, timeout=10)


def test_awaited_schedule_twins_act_like_the_sync_calls(make_app: Callable[..., App]) -> None:
    app = make_app()

    @app.periodic(every=3600, name="tests.hourly")
    def hourly() -> None: ...

    async def control() -> underway.Job:
        await app.pause_schedule_async("tests.hourly")
        return await app.trigger_schedule_async("tests.hourly")

    triggered = asyncio.run(control())
    assert triggered.schedule == "tests.hourly" and triggered.status is Status.PENDING
    listed = asyncio.run(app.list_schedules_async())
    assert [(s.name, s.paused, s.run_count) for s in listed] == [
        (s.name, s.paused, s.run_count) for s in app.list_schedules()
    ]
    assert [(s.name, s.paused) for s in listed] == [("tests.hourly", True)]
    with pytest.raises(underway.UnderwayError) as refused:
        app.resume_schedule("tests.nope")
    with pytest.raises(type(refused.value)):  # the same refusal, awaited
        asyncio.run(app.resume_schedule_async("tests.nope"))


def test_awaited_queue_controls_and_prune_act_like_the_sync_calls(
    make_app: Callable[..., App],
) -> None:
    app = make_app()

    @app.task(name="tests.noop", queue="mail")
    def noop() -> None: ...

    doomed = noop.enqueue()
    app.cancel(doomed.id)

    async def control() -> int:
        await app.pause_queue_async("mail")
        await app.set_queue_concurrency_async("mail", 2)
        return await app.prune_async(older_than=0)

    assert asyncio.run(control()) == 1
    assert app.get_job(doomed.id) is None
    assert app.prune(older_than=0) == 0

    queues = {q.name: q for q in asyncio.run(app.queues_async())}
    assert queues == {q.name: q for q in app.queues()}
    assert queues["mail"].paused is True
    assert queues["mail"].concurrency == 2

    asyncio.run(app.resume_queue_async("mail"))
    assert {q.name: q.paused for q in app.queues()}["mail"] is False
    with pytest.raises(underway.InvalidArguments):
        asyncio.run(app.set_queue_concurrency_async("mail", -1))


def _ids(page: Page) -> list[Any]:
    return [job.id for job in page.jobs]
