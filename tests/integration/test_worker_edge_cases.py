"""Edge cases found in review: a task's own CancelledError, values no store can hold, a job
whose outcome the store refuses."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

import underway


def test_a_task_cancelled_by_its_own_code_fails_like_any_error(
    fast_app: Callable[..., underway.App], drain: Callable[..., int]
) -> None:
    app = fast_app()
    runs: list[int] = []

    @app.task(max_attempts=2, retry=underway.Backoff(base=0.0, jitter=False))
    async def awaits_a_cancelled_future() -> None:
        runs.append(1)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.cancel()
        await future  # raises CancelledError inside the task; nobody stopped the job

    job = awaits_a_cancelled_future.enqueue()
    drain(app)
    final = app.get_job(job.id)
    assert final is not None
    assert final.status is underway.Status.FAILED  # not handed back forever
    assert final.attempt == 2 and len(runs) == 2
    assert final.error is not None and final.error.type == "CancelledError"


@pytest.mark.parametrize(
    "options",
    [{"priority": 2**40}, {"priority": -(2**31) - 1}, {"delay": 1e12}, {"queue": "a\x00b"},
     {"key": "k\x00"}, {"max_attempts": 2**31},
     # the same on both stores: SQLite stored 1.5, PostgreSQL rounded it to 2
     {"priority": 1.5}, {"priority": True}, {"max_attempts": 2.5},
     # wrong types: a clear refusal, not a raw TypeError from deep inside
     {"delay": "5"}, {"queue": 5}, {"tenant": b"acme"}, {"run_at": "2030-01-01"},
     # indexed names PostgreSQL cannot index (they worked on SQLite only)
     {"key": "k" * 3000}, {"queue": "q" * 3000}, {"tenant": "é" * 600}],
)  # fmt: skip
def test_values_no_store_can_hold_are_refused_at_enqueue(
    fast_app: Callable[..., underway.App], options: dict[str, object]
) -> None:
    app = fast_app()

    @app.task()
    def plain() -> None: ...

    with pytest.raises(underway.InvalidArguments) as refused:
        plain.options(**options).enqueue()  # type: ignore[arg-type]
    assert next(iter(options)) in str(refused.value)  # the message names the option
    assert app.stats().total == 0


def test_a_task_name_too_long_to_index_is_refused_at_declaration(
    fast_app: Callable[..., underway.App],
) -> None:
    app = fast_app()
    with pytest.raises(underway.ConfigurationError, match="over the limit"):

        @app.task(name="t" * 2000)
        def plain() -> None: ...


def test_results_and_messages_with_nul_are_stored_safely(
    fast_app: Callable[..., underway.App], drain: Callable[..., int]
) -> None:
    app = fast_app()

    @app.task(max_attempts=1)
    def returns_nul(ctx: underway.Context) -> str:
        ctx.report_status("step\x00one")
        return "a\x00b"

    @app.task(max_attempts=1)
    def raises_nul() -> None:
        raise ValueError("bad\x00input")

    bad_result = returns_nul.enqueue()
    bad_error = raises_nul.enqueue()
    drain(app)
    first, second = app.get_job(bad_result.id), app.get_job(bad_error.id)
    assert first is not None and second is not None
    assert first.status is underway.Status.FAILED
    assert first.error is not None and "NUL" in first.error.message
    assert first.status_message == "step\\0one"
    assert second.status is underway.Status.FAILED
    assert second.error is not None and second.error.message == "ValueError: bad\\0input"
