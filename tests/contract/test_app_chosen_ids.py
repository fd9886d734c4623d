"""Caller-chosen ids and a task's default status message, as user code sees them through
`task.options(...)` and `@app.task(...)`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest

from underway import App, InvalidArguments, JobExists, Task

MakeApp = Callable[..., App]


def echo_task(app: App) -> Task[[str], str]:
    @app.task(name="tests.echo", status_message="Pending")
    def echo(text: str) -> str:
        return text

    return echo


def test_options_id_makes_the_job_with_that_id(make_app: MakeApp) -> None:
    app = make_app()
    echo = echo_task(app)
    ident = uuid.uuid4()
    job = echo.options(id=ident).enqueue("a")
    assert job.id == ident and app.get_job(ident) == job
    as_text = uuid.uuid4()
    assert echo.options(id=str(as_text)).enqueue("b").id == as_text


def test_an_id_that_exists_raises_job_exists_and_keeps_the_first_job(make_app: MakeApp) -> None:
    app = make_app()
    echo = echo_task(app)
    ident = uuid.uuid4()
    first = echo.options(id=ident).enqueue("first")
    with pytest.raises(JobExists, match=f"{ident} already exists: pick another id, or fetch"):
        echo.options(id=ident).enqueue("second")
    assert app.get_job(ident) == first
    assert len(app.list_jobs().jobs) == 1


def test_an_id_that_is_not_a_uuid_is_refused(make_app: MakeApp) -> None:
    echo = echo_task(make_app())
    with pytest.raises(InvalidArguments, match="not a job id"):
        echo.options(id="job-1").enqueue("a")


def test_one_id_for_several_jobs_of_one_batch_is_refused(make_app: MakeApp) -> None:
    app = make_app()
    echo = echo_task(app)
    ident = uuid.uuid4()
    with pytest.raises(InvalidArguments, match=f"the id {ident} is given to more than one job"):
        echo.options(id=ident).enqueue_many([("a",), ("b",)])
    assert app.list_jobs().jobs == []
    [job] = echo.options(id=ident).enqueue_many([("a",)])
    assert job.id == ident


def test_enqueue_async_refuses_an_existing_id_too(make_app: MakeApp) -> None:
    echo = echo_task(make_app())
    ident = uuid.uuid4()

    async def twice() -> None:
        await echo.options(id=ident).enqueue_async("a")
        await echo.options(id=ident).enqueue_async("b")

    with pytest.raises(JobExists, match=str(ident)):
        asyncio.run(twice())


def test_an_enqueued_job_shows_the_tasks_status_message(make_app: MakeApp) -> None:
    app = make_app()
    echo = echo_task(app)
    job = echo.enqueue("a")
    assert job.status_message == "Pending"
    stored = app.get_job(job.id)
    assert stored is not None and stored.status_message == "Pending"
    assert echo.options(status_message="Queued by hand").enqueue("b").status_message == (
        "Queued by hand"
    )


def test_a_task_without_a_status_message_enqueues_none(make_app: MakeApp) -> None:
    app = make_app()

    @app.task(name="tests.plain")
    def plain() -> None: ...

    assert plain.enqueue().status_message is None
