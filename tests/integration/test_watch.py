"""`app.watch` and `app.watch_async` in-process: every change of a job a worker runs, in order;
resuming with `since`; filters; `timeout` ends the stream; leaving the stream unsubscribes (the
app's feed thread stops); the async twin takes the same arguments and yields the same changes.
Also `app.attempts` and `app.workers` for a worker in this process.

On PostgreSQL a change becomes readable only once every older transaction on the server ended
(docs/decisions/0011-change-feed.md), so the tests read until they see what they wait for,
with generous timeouts that only bound a hang."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import underway
from underway import App, Backoff, Change, ChangeKind, InvalidArguments, Status
from underway.testing import RunningWorker

MakeApp = Callable[..., App]
Drain = Callable[..., int]
StartWorker = Callable[..., RunningWorker]
WaitFor = Callable[..., object]

#: ends a stream only when something hangs; a test never waits this long when it passes
HANG = 60.0


def follow(app: App, since: str, until: Callable[[Change], bool], **where: object) -> list[Change]:
    """Changes after `since` up to and including the first for which `until` holds."""
    seen: list[Change] = []
    for change in app.watch(since=since, timeout=HANG, **where):  # type: ignore[arg-type]
        seen.append(change)
        if until(change):
            return seen
    pytest.fail(f"the stream went quiet after {[(c.kind, c.job.task) for c in seen]}")


def finished(job_id: object) -> Callable[[Change], bool]:
    return lambda change: change.job.id == job_id and change.job.finished


def steps_app(fast_app: MakeApp) -> tuple[App, Any]:
    app = fast_app()

    @app.task(name="tests.steps")
    def steps(ctx: underway.Context, n: int) -> int:
        for i in range(1, n + 1):
            ctx.set_payload({"step": i})
            ctx.report_progress(i / n, f"step {i} of {n}")
            time.sleep(0.06)  # longer than a flush: each step is written
        return n

    return app, steps


def test_a_watcher_sees_every_step_of_a_job_in_order(fast_app: MakeApp, drain: Drain) -> None:
    app, steps = steps_app(fast_app)
    head = app.store.change_head()
    job = steps.enqueue(3)
    assert drain(app) == 1
    seen = follow(app, head, finished(job.id), job=job.id)
    kinds = [c.kind for c in seen]
    assert kinds[:2] == [ChangeKind.ENQUEUED, ChangeKind.STARTED]
    assert kinds[-1] == ChangeKind.COMPLETED
    assert set(kinds[2:-1]) <= {ChangeKind.REPORTED}
    progress = [c.job.progress for c in seen if c.job.progress is not None]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert 1 / 3 in progress and 2 / 3 in progress  # every step reached the feed
    assert seen[-1].job == app.get_job(job.id)
    assert seen[-1].job.result == 3 and seen[-1].job.payload == {"step": 3}
    cursors = [c.cursor for c in seen]
    assert len(set(cursors)) == len(cursors)


def test_since_resumes_after_the_last_change_seen(fast_app: MakeApp, drain: Drain) -> None:
    app, steps = steps_app(fast_app)
    head = app.store.change_head()
    jobs = [steps.enqueue(2) for _ in range(3)]
    assert drain(app) == 3
    last = finished(jobs[-1].id)
    everything = follow(app, head, last)
    got: list[Change] = []
    cursor = head
    while not got or not last(got[-1]):  # short streams, each left after two changes
        for n, change in enumerate(app.watch(since=cursor, timeout=HANG), start=1):
            got.append(change)
            cursor = change.cursor
            if n == 2 or last(change):
                break
        else:
            pytest.fail(f"a resumed stream went quiet after {len(got)} changes")
    assert [c.cursor for c in got] == [c.cursor for c in everything]
    assert got == everything


def test_filters_by_job_task_queue_and_tenant(fast_app: MakeApp, drain: Drain) -> None:
    app = fast_app()

    @app.task(name="tests.one")
    def one(n: int) -> int:
        return n

    @app.task(name="tests.two")
    def two(n: int) -> int:
        return n

    head = app.store.change_head()
    a = one.options(queue="q1", tenant="acme").enqueue(1)
    b = two.options(queue="q2", tenant="acme").enqueue(2)
    c = one.options(queue="q2").enqueue(3)
    assert drain(app) == 3
    everything = follow(app, head, finished(c.id))

    def ids(**where: object) -> list[str]:
        # Each filter's stream ends at the last change it matches among `everything`.
        wanted = [x for x in everything if all(str(getattr(x.job, "id" if k == "job" else k))
                                               == str(v) for k, v in where.items())]  # fmt: skip
        stop = wanted[-1].cursor
        got = follow(app, head, lambda x: x.cursor == stop, **where)
        assert got == wanted, where
        return sorted({str(x.job.id) for x in got})

    assert ids(job=b.id) == [str(b.id)]
    assert ids(task="tests.one") == sorted([str(a.id), str(c.id)])
    assert ids(queue="q2") == sorted([str(b.id), str(c.id)])
    assert ids(tenant="acme") == sorted([str(a.id), str(b.id)])
    assert ids(task="tests.one", queue="q2") == [str(c.id)]
    assert ids(task="tests.two", tenant="acme", queue="q2") == [str(b.id)]
    assert ids(job=str(a.id), tenant="acme") == [str(a.id)]  # a job id as text works too


def test_timeout_ends_a_quiet_stream(fast_app: MakeApp) -> None:
    app = fast_app()
    assert list(app.watch(timeout=0.2)) == []
    assert list(app.watch(task="tests.none", since=app.store.change_head(), timeout=0.2)) == []


def test_bad_arguments_are_refused(fast_app: MakeApp) -> None:
    app = fast_app()
    with pytest.raises(InvalidArguments, match="job id"):
        next(app.watch(job="not-a-uuid", timeout=0.1))
    with pytest.raises(InvalidArguments, match="cursor"):
        next(app.watch(since="not-a-cursor", timeout=0.1))
    with pytest.raises(InvalidArguments, match="job id"):
        app.attempts("nope")


def feed_stopped(app: App) -> bool:
    return app.feed._thread is None


def test_leaving_the_stream_stops_the_feed_thread(
    fast_app: MakeApp, drain: Drain, wait_for: WaitFor
) -> None:
    app, steps = steps_app(fast_app)
    head = app.store.change_head()
    job = steps.enqueue(1)
    assert feed_stopped(app)
    for change in app.watch(since=head, timeout=HANG):
        assert change.job.id == job.id
        assert not feed_stopped(app), "a watcher listens through the app's feed"
        break
    wait_for(lambda: feed_stopped(app), timeout=5, what="the feed thread to stop")

    stream = app.watch(since=head, timeout=HANG)
    assert next(stream).job.id == job.id
    stream.close()  # the same when the stream is closed by hand
    wait_for(lambda: feed_stopped(app), timeout=5, what="the feed thread to stop again")
    assert drain(app) == 1


def feed_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "underway-feed"]


def test_many_watchers_share_one_feed_thread(fast_app: MakeApp, wait_for: WaitFor) -> None:
    wait_for(lambda: not feed_threads(), timeout=5, what="earlier tests' feed threads to end")
    app, steps = steps_app(fast_app)
    head = app.store.change_head()
    job = steps.enqueue(1)
    streams = [app.watch(job=job.id, since=head, timeout=HANG) for _ in range(5)]
    assert {next(s).kind for s in streams} == {ChangeKind.ENQUEUED}
    assert feed_threads() == [app.feed._thread]
    for s in streams:
        s.close()
    wait_for(lambda: feed_stopped(app), timeout=5, what="the feed thread to stop")


def test_a_watcher_follows_a_worker_running_in_the_background(
    fast_app: MakeApp, start_worker: StartWorker
) -> None:
    app, steps = steps_app(fast_app)
    head = app.store.change_head()
    start_worker(app)
    job = steps.enqueue(2)
    seen = follow(app, head, finished(job.id), job=job.id)
    assert [c.kind for c in seen][:2] == [ChangeKind.ENQUEUED, ChangeKind.STARTED]
    assert seen[-1].job.status is Status.COMPLETED


# --- the async twin ----------------------------------------------------------------------------


def test_watch_async_takes_the_same_arguments_as_watch() -> None:
    sync = inspect.signature(App.watch).parameters
    twin = inspect.signature(App.watch_async).parameters
    assert list(twin.values()) == list(sync.values())
    assert inspect.isasyncgenfunction(App.watch_async)


def test_watch_async_yields_what_watch_yields(fast_app: MakeApp, drain: Drain) -> None:
    app, steps = steps_app(fast_app)
    head = app.store.change_head()
    job = steps.enqueue(2)
    assert drain(app) == 1
    expected = follow(app, head, finished(job.id), job=job.id)

    async def collect() -> list[Change]:
        got: list[Change] = []
        async for change in app.watch_async(job=job.id, since=head, timeout=HANG):
            got.append(change)
            if change.job.finished:
                break
        return got

    assert asyncio.run(collect()) == expected


def test_watch_async_ends_on_timeout_and_unsubscribes_when_left(
    fast_app: MakeApp, wait_for: WaitFor
) -> None:
    app, steps = steps_app(fast_app)

    async def scenario() -> None:
        assert [c async for c in app.watch_async(timeout=0.2)] == []
        head = await asyncio.to_thread(app.store.change_head)
        await steps.enqueue_async(1)
        async with contextlib.aclosing(app.watch_async(since=head, timeout=HANG)) as stream:
            async for change in stream:
                assert change.kind is ChangeKind.ENQUEUED and not feed_stopped(app)
                break
        for _ in range(500):  # the loop stays free while the feed thread winds down
            if feed_stopped(app):
                return
            await asyncio.sleep(0.01)
        pytest.fail("the feed thread did not stop after the async stream closed")

    asyncio.run(scenario())


# --- attempts and workers in-process ----------------------------------------------------------


def test_attempts_of_a_job_that_was_retried(fast_app: MakeApp, drain: Drain) -> None:
    app = fast_app()

    @app.task(name="tests.flaky", max_attempts=3, retry=Backoff(base=0.0, jitter=False))
    def flaky(ctx: underway.Context) -> str:
        if ctx.job.attempt < 2:
            raise ConnectionError("try again")
        return "ok"

    job = flaky.enqueue()
    drain(app)
    attempts = app.attempts(job.id)
    assert [(a.number, a.outcome) for a in attempts] == [(1, "retry"), (2, "completed")]
    error = attempts[0].error
    assert error is not None and error.type == "ConnectionError" and "try again" in error.message
    assert attempts[1].error is None
    assert attempts[0].worker_id is not None and attempts[0].worker_id == attempts[1].worker_id
    assert all(a.duration is not None and a.duration >= 0 for a in attempts)
    assert asyncio.run(app.attempts_async(str(job.id))) == attempts


def test_workers_lists_a_running_worker_with_its_job(
    fast_app: MakeApp, start_worker: StartWorker, wait_for: WaitFor
) -> None:
    app = fast_app()
    release = threading.Event()

    @app.task(name="tests.gated")
    def gated() -> None:
        release.wait(30)

    running = start_worker(app, concurrency=2)
    job = gated.enqueue()
    wait_for(lambda: [w.running for w in app.workers()] == [1], what="the worker runs the job")
    [info] = app.workers()
    assert info.concurrency == 2 and info.queues is None
    assert asyncio.run(app.workers_async())[0].id == info.id
    assert app.attempts(job.id)[0].worker_id == info.id
    release.set()
    running.stop()
    assert app.workers() == []  # a worker that stopped forgets itself
