"""The startup work (default administrator, is Multilogin running) does not block boot: it is
a job the booting worker enqueues, and the worker takes other jobs while it runs."""

from __future__ import annotations

from collections.abc import Callable

from outreach.outside import OutsideServices

from outreach import Outreach
from underway import Status, testing

STATUS = "/multilogin/status"


def admins(outreach: Outreach) -> list[str]:
    with outreach.database.connect() as conn:
        return [str(row[0]) for row in conn.rows("SELECT email FROM admins")]


def test_a_booting_worker_takes_other_jobs_while_the_startup_work_waits_on_multilogin(
    outreach: Outreach, outside: OutsideServices
) -> None:
    outside.server.hold(STATUS)  # Multilogin is slow to answer today
    app = outreach.app
    with testing.worker(app, concurrency=2, scheduler=False):
        testing.wait_for(
            lambda: outside.server.waiting(STATUS), what="the startup work to ask Multilogin"
        )
        [init] = app.list_jobs(task="outreach.initialize").jobs
        cleanup = outreach.cleanup_sessions.enqueue()
        assert app.wait(cleanup.id, timeout=10).status is Status.COMPLETED
        assert app.get_job(init.id).status is Status.RUNNING  # type: ignore[union-attr]

        outside.server.release(STATUS)
        done = app.wait(init.id, timeout=10)
    assert done.result == {"admin_created": True, "multilogin_running": True}
    assert admins(outreach) == [outreach.config.admin_email]


def test_every_boot_runs_it_again_and_it_creates_the_administrator_once(
    outreach: Outreach,
) -> None:
    testing.drain(outreach.app)
    testing.drain(outreach.app)
    runs = outreach.app.list_jobs(task="outreach.initialize").jobs
    assert sorted(job.result["admin_created"] for job in runs) == [False, True]  # type: ignore[index]
    assert admins(outreach) == [outreach.config.admin_email]


def test_workers_booting_together_enqueue_one_startup_job(
    make_outreach: Callable[..., Outreach], outside: OutsideServices
) -> None:
    outside.server.hold(STATUS)
    first, second = make_outreach(), make_outreach()
    with testing.worker(first.app, scheduler=False), testing.worker(second.app, scheduler=False):
        # A worker is listed once its startup hooks ran: both have enqueued by then.
        testing.wait_for(lambda: len(first.app.workers()) == 2, what="both workers to boot")
        testing.wait_for(lambda: outside.server.waiting(STATUS), what="the startup work to start")
        assert len(first.app.list_jobs(task="outreach.initialize").jobs) == 1
        outside.server.release(STATUS)
