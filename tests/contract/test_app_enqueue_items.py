"""enqueue_many with per-item options (decision 0020): each `Prepared` item keeps its own
tenant, key, priority, delay, queue, title; one transaction; typed, checked options."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from underway import App, InvalidArguments, Status, Task

MakeApp = Callable[..., App]


def report_task(app: App) -> Task[[str, int], None]:
    @app.task(name="tests.report", queue="reports", priority=1)
    def report(tenant: str, month: int = 1) -> None:
        return None

    return report


def test_each_prepared_item_keeps_its_own_options(make_app: MakeApp) -> None:
    app = make_app()
    report = report_task(app)
    later = datetime.now(UTC) + timedelta(hours=2)
    jobs = report.enqueue_many(
        [
            report.options(tenant="a", key="report:a", priority=5).prepare("a", month=3),
            report.options(tenant="b", key="report:b", delay=timedelta(hours=1)).prepare("b"),
            report.options(tenant="c", queue="slow", title="Report c", run_at=later).prepare("c"),
            {"tenant": "none"},
            ("plain", 2),
        ]
    )
    assert [(j.tenant, j.key, j.priority, j.queue) for j in jobs] == [
        ("a", "report:a", 5, "reports"),
        ("b", "report:b", 1, "reports"),
        ("c", None, 1, "slow"),
        (None, None, 1, "reports"),
        (None, None, 1, "reports"),
    ]
    assert jobs[0].args == {"tenant": "a", "month": 3} and jobs[4].args == {
        "tenant": "plain",
        "month": 2,
    }
    assert jobs[1].run_at - jobs[0].run_at > timedelta(minutes=59)
    assert abs(jobs[2].run_at - later) < timedelta(milliseconds=1) and jobs[2].title == "Report c"
    assert [app.get_job(j.id) for j in jobs] == jobs
    assert {j.tenant for j in app.list_jobs(tenant="a").jobs} == {"a"}


def test_a_key_per_item_returns_the_unfinished_job_of_that_key(make_app: MakeApp) -> None:
    app = make_app()
    report = report_task(app)
    first = report.options(key="report:a").enqueue("a")
    jobs = report.enqueue_many(
        [report.options(key="report:a").prepare("a"), report.options(key="report:b").prepare("b")]
    )
    assert jobs[0] == first
    assert jobs[1].key == "report:b" and jobs[1].status is Status.PENDING
    # a prepared call can be enqueued again: it is the same call, a new job
    item = report.prepare("again")
    assert len({j.id for j in report.enqueue_many([item, item])}) == 2


def test_bound_options_apply_to_dicts_and_tuples_not_to_prepared_items(make_app: MakeApp) -> None:
    app = make_app()
    report = report_task(app)
    jobs = report.options(tenant="t1", priority=9).enqueue_many(
        [("x",), report.options(tenant="t2").prepare("y")]
    )
    assert [(j.tenant, j.priority) for j in jobs] == [("t1", 9), ("t2", 1)]


def test_arguments_and_options_are_checked_when_prepared(make_app: MakeApp) -> None:
    app = make_app()
    report = report_task(app)
    with pytest.raises(InvalidArguments, match="do not fit"):
        report.options(tenant="a").prepare(nope=1)  # type: ignore[call-arg]
    with pytest.raises(InvalidArguments, match="priority"):
        report.options(priority="high")  # type: ignore[arg-type]
    with pytest.raises(InvalidArguments, match="one job"):
        report.options(key="all").enqueue_many([("a",)])
    with pytest.raises(InvalidArguments, match="connection= belongs to the enqueue_many"):
        report.options(connection=object()).prepare("a")

    @app.task(name="tests.other")
    def other(tenant: str, month: int = 1) -> None: ...

    with pytest.raises(InvalidArguments, match=r"prepared for task tests\.other"):
        report.enqueue_many([other.prepare("a")])
    assert app.list_jobs().jobs == []


def test_an_unknown_option_names_the_valid_ones(make_app: MakeApp) -> None:
    app = make_app()
    report = report_task(app)
    with pytest.raises(InvalidArguments, match=r"unknown enqueue option\(s\) tennant; .*tenant"):
        report.options(tennant="a")  # type: ignore[call-arg]
    bound = report.options(queue="slow")
    with pytest.raises(InvalidArguments, match=r"prio.*the options are .*priority"):
        bound.options(prio=2)  # type: ignore[call-arg]
    with pytest.raises(InvalidArguments, match="run_at must be timezone-aware"):
        bound.options(run_at=datetime(2030, 1, 1))
    job = bound.options(priority=3, delay=timedelta(seconds=30)).enqueue("a")
    assert (job.queue, job.priority) == ("slow", 3)


def test_enqueue_many_async_takes_prepared_items(make_app: MakeApp) -> None:
    app = make_app()
    report = report_task(app)
    items = [report.options(tenant=t, key=f"k:{t}").prepare(t) for t in ("a", "b")]
    jobs = asyncio.run(report.enqueue_many_async(items))
    bound = asyncio.run(report.options(queue="slow").enqueue_many_async([("c",), items[0]]))
    assert [(j.tenant, j.key) for j in jobs] == [("a", "k:a"), ("b", "k:b")]
    assert bound[1] == jobs[0] and bound[0].queue == "slow"


def test_a_prepared_item_keeps_its_chosen_id_and_one_id_twice_is_refused(
    make_app: MakeApp,
) -> None:
    app = make_app()
    report = report_task(app)
    chosen = uuid.uuid4()
    (job,) = report.enqueue_many([report.options(id=chosen, tenant="a").prepare("a")])
    assert (job.id, job.tenant) == (chosen, "a") and app.get_job(chosen) == job
    item = report.options(id=uuid.uuid4()).prepare("b")
    with pytest.raises(InvalidArguments, match="given to more than one job"):
        report.enqueue_many([item, item])
