"""A scope per execution (`deps=`): each run gets its own browser profile, HTTP client and
database connection, and gives them back when it ends, whether it succeeded or failed."""

from __future__ import annotations

from outreach.oauth import add_workspace_account
from outreach.outside import OutsideServices

from outreach import Outreach
from underway import Status, testing

TOKEN = "/google/oauth/token"


def test_two_runs_at_once_each_drive_a_browser_of_their_own_and_stop_it(
    outreach: Outreach, outside: OutsideServices
) -> None:
    outside.browsers.accounts["bob@workspace.example"] = "hunter2"
    with outreach.database.connect() as conn:
        add_workspace_account(conn, "bob@workspace.example", "hunter2")
    outside.server.hold(TOKEN)
    with testing.worker(outreach.app, concurrency=4, scheduler=False):
        ann = outreach.oauth.enqueue("ann@workspace.example")
        bob = outreach.oauth.enqueue("bob@workspace.example")
        testing.wait_for(
            lambda: outside.server.waiting(TOKEN) == 2, what="both runs to reach the token"
        )
        browsers = outside.browsers
        assert len(browsers.profiles) == 2 and len(browsers.sessions) == 2
        assert {b.signed_in for b in browsers.sessions.values()} == {
            "ann@workspace.example", "bob@workspace.example",
        }  # fmt: skip
        outside.server.release(TOKEN)
        for job in (ann, bob):
            assert outreach.app.wait(job.id, timeout=10).status is Status.COMPLETED
    assert browsers.profiles == {} and browsers.sessions == {}
    assert sorted(browsers.stopped) == sorted(browsers.started)
    assert outreach.database.open_connections == 0


def test_a_failed_run_still_stops_its_browser(outreach: Outreach, outside: OutsideServices) -> None:
    with outreach.database.connect() as conn:
        add_workspace_account(conn, "ann@workspace.example", "an old password")
    job = outreach.oauth.enqueue("ann@workspace.example")
    testing.drain(outreach.app)
    assert outreach.app.get_job(job.id).status is Status.FAILED  # type: ignore[union-attr]
    assert outside.browsers.started == outside.browsers.stopped == ["profile-1"]
    assert outside.browsers.sessions == {}
    assert outreach.database.open_connections == 0


def test_a_browser_that_fails_to_start_fails_the_attempt_and_the_retry_gets_a_new_one(
    outreach: Outreach, outside: OutsideServices
) -> None:
    outside.server.fail("/multilogin/profile/quick", 503)
    job = outreach.oauth.enqueue("ann@workspace.example")
    with testing.worker(outreach.app, scheduler=False):
        done = outreach.app.wait(job.id, timeout=20)
    assert done.status is Status.COMPLETED
    [failed, succeeded] = outreach.app.attempts(job.id)
    assert "dependency 'browser' failed to open" in (failed.error.message if failed.error else "")
    assert succeeded.error is None
    assert outside.browsers.started == outside.browsers.stopped


def test_every_run_of_every_task_closes_its_connection(outreach: Outreach) -> None:
    outreach.cleanup_sessions.enqueue()
    outreach.monitor_campaigns.enqueue()
    outreach.sync.enqueue()
    assert testing.drain(outreach.app, concurrency=3) == 4  # and the startup work
    assert outreach.database.open_connections == 0
