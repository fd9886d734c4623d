"""A worker runs sync and async tasks, with and without a Context, and stores their JSON result;
arguments come back as they were given; a result that is not JSON fails the job clearly."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import underway
from underway import App, Status

MakeApp = Callable[..., App]
Drain = Callable[..., int]


def test_sync_and_async_tasks_complete_with_their_json_result(
    fast_app: MakeApp, drain: Drain
) -> None:
    app = fast_app()

    @app.task(name="tests.sync_report")
    def sync_report(name: str) -> dict[str, Any]:
        return {"hello": name, "items": [1, 2.5, None, True], "nested": {"k": "v"}}

    @app.task(name="tests.async_report")
    async def async_report(name: str) -> list[Any]:
        await asyncio.sleep(0)
        return [name, {"async": True}]

    @app.task(name="tests.nothing")
    def nothing() -> None:
        return None

    jobs = [sync_report.enqueue("sync"), async_report.enqueue("async"), nothing.enqueue()]
    assert drain(app, concurrency=2) == 3

    done = [app.get_job(job.id) for job in jobs]
    assert all(job is not None and job.status is Status.COMPLETED for job in done), done
    assert [job.result for job in done if job is not None] == [
        {"hello": "sync", "items": [1, 2.5, None, True], "nested": {"k": "v"}},
        ["async", {"async": True}],
        None,
    ]
    for job in done:
        assert job is not None
        assert job.attempt == 1 and job.error is None
        assert job.started_at is not None and job.completed_at is not None
        assert job.created_at <= job.started_at <= job.completed_at


def test_tasks_with_and_without_context(fast_app: MakeApp, drain: Drain) -> None:
    app = fast_app()

    @app.task(name="tests.with_ctx")
    def with_ctx(ctx: underway.Context, n: int) -> dict[str, Any]:
        return {"job": str(ctx.job.id), "attempt": ctx.job.attempt, "n": n}

    @app.task(name="tests.with_annotated_context")
    async def with_annotated_context(context: underway.Context, n: int) -> str:
        return f"{context.job.task}:{n}"

    @app.task(name="tests.without_ctx")
    async def without_ctx(n: int) -> int:
        return n * 2

    a = with_ctx.enqueue(1)
    b = with_annotated_context.enqueue(n=2)
    c = without_ctx.enqueue(3)
    assert drain(app) == 3

    got_a, got_b, got_c = (app.get_job(j.id) for j in (a, b, c))
    assert got_a is not None and got_a.result == {"job": str(a.id), "attempt": 1, "n": 1}
    assert got_b is not None and got_b.result == "tests.with_annotated_context:2"
    assert got_c is not None and got_c.result == 6
    # A task without a context stays a plain function, callable directly.
    assert asyncio.run(without_ctx(4)) == 8


def test_positional_keyword_and_default_arguments_round_trip(
    fast_app: MakeApp, drain: Drain
) -> None:
    app = fast_app()

    @app.task(name="tests.echo")
    def echo(
        a: int, b: str = "bee", *rest: int, c: list[int] | None = None, **extra: Any
    ) -> dict[str, Any]:
        return {"a": a, "b": b, "rest": list(rest), "c": c, "extra": extra}

    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        ((1,), {}),
        ((1, "two"), {}),
        ((), {"a": 1, "b": "kw"}),
        ((1, "x", 7, 8), {"c": [3], "flag": True, "note": "é"}),
        ((), {"a": 5, "c": None}),
    ]
    jobs = [echo.enqueue(*args, **kwargs) for args, kwargs in calls]
    assert drain(app) == len(calls)

    results = [getattr(app.get_job(job.id), "result", None) for job in jobs]
    # What the function itself returns when called directly is what the job stores.
    assert results == [echo(*args, **kwargs) for args, kwargs in calls]
    assert results[0] == {"a": 1, "b": "bee", "rest": [], "c": None, "extra": {}}
    assert results[3] == {
        "a": 1,
        "b": "x",
        "rest": [7, 8],
        "c": [3],
        "extra": {"flag": True, "note": "é"},
    }


def test_enqueue_many_arguments_round_trip(fast_app: MakeApp, drain: Drain) -> None:
    app = fast_app()

    @app.task(name="tests.add")
    async def add(a: int, b: int = 10) -> int:
        return a + b

    jobs = add.enqueue_many([{"a": 1}, (2, 3), {"a": 4, "b": 5}])
    assert drain(app, concurrency=3) == 3
    assert [getattr(app.get_job(j.id), "result", None) for j in jobs] == [11, 5, 9]


def test_a_result_that_is_not_json_fails_the_job_clearly(fast_app: MakeApp, drain: Drain) -> None:
    app = fast_app()

    @app.task(name="tests.returns_a_set", max_attempts=4)
    def returns_a_set() -> set[int]:
        return {1, 2}

    @app.task(name="tests.returns_an_object")
    async def returns_an_object() -> object:
        return object()

    first = returns_a_set.enqueue()
    second = returns_an_object.enqueue()
    assert drain(app) == 2

    for job_id, task_name in (
        (first.id, "tests.returns_a_set"),
        (second.id, "tests.returns_an_object"),
    ):
        job = app.get_job(job_id)
        assert job is not None
        assert job.status is Status.FAILED
        assert job.attempt == 1, "a result that cannot be stored is not worth retrying"
        assert job.result is None
        assert job.error is not None
        assert task_name in job.error.message
        assert "not JSON" in job.error.message, job.error.message
