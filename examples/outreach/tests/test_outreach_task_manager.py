"""The OAuth task manager: a caller creates a task over underway's HTTP API and gets its id,
polls IsCompleted / IsSuccess / Message, and receives a signed callback when it ends."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from outreach.oauth import add_workspace_account
from outreach.outside import OutsideServices
from outreach.task_manager import OAuthRequest, TaskManager, TaskModel
from standardwebhooks import Webhook

from outreach import Outreach
from underway import testing

ANN = OAuthRequest("ann@workspace.example", proxy="socks5://proxy.example:1080")


def manager(outreach: Outreach, api_url: str) -> TaskManager:
    _, key = outreach.app.create_key(name="outreach web")
    return TaskManager(api_url, key)


def finished(tasks: TaskManager, task_id: Any) -> Callable[[], TaskModel | None]:
    def probe() -> TaskModel | None:
        task = tasks.get_task_by_id(task_id)
        return task if task is not None and task.is_completed else None

    return probe


def test_a_created_task_is_polled_to_success_and_its_caller_gets_a_signed_callback(
    outreach: Outreach, api_url: str, outside: OutsideServices, secret: str,
) -> None:  # fmt: skip
    with manager(outreach, api_url) as tasks:
        task_id = tasks.create(ANN, user_id=7, callback_url=outside.callback_url)
        before = tasks.get_task_by_id(task_id)
        assert before is not None and (before.is_completed, before.is_success) == (False, False)

        with testing.worker(outreach.app, concurrency=2, scheduler=False):
            task = testing.wait_for(finished(tasks, task_id), what="the OAuth task to finish")
            [callback] = testing.wait_for(
                lambda: outside.server.requests("/caller"), what="a callback"
            )

    assert (task.id, task.is_completed, task.is_success) == (task_id, True, True)
    assert task.message == "authorized ann@workspace.example"
    assert task.result == {"email": ANN.email, "user_id": 7, "scopes": ["gmail.send"]}

    event = Webhook(secret).verify(callback.raw, callback.headers)
    assert event["type"] == "job.completed"
    assert event["data"]["id"] == str(task_id) and event["data"]["result"] == task.result

    # The refresh token went to the tool's own table, not into the job anyone can read.
    with outreach.database.connect() as conn:
        assert conn.rows("SELECT email, user_id, refresh_token FROM google_accounts") == [
            (ANN.email, 7, f"rt-{ANN.email}")
        ]
    assert "rt-" not in json.dumps(event) and "correct horse" not in json.dumps(event)


def test_a_refused_sign_in_completes_the_task_unsuccessfully_with_the_reason(
    outreach: Outreach, api_url: str, outside: OutsideServices, secret: str,
) -> None:  # fmt: skip
    with outreach.database.connect() as conn:
        add_workspace_account(conn, ANN.email, "an old password")
    with manager(outreach, api_url) as tasks:
        task_id = tasks.create(ANN, callback_url=outside.callback_url)
        with testing.worker(outreach.app, scheduler=False):
            task = testing.wait_for(finished(tasks, task_id), what="the OAuth task to finish")
            [callback] = testing.wait_for(
                lambda: outside.server.requests("/caller"), what="a callback"
            )

    assert (task.is_completed, task.is_success) == (True, False)
    assert (
        task.message == f"SignInFailed: Google refused the sign-in of {ANN.email}: wrong_password"
    )
    event = Webhook(secret).verify(callback.raw, callback.headers)
    assert event["type"] == "job.failed"
    # A refused password is final: one attempt, not three.
    assert event["data"]["attempt"] == 1


def test_the_poll_shows_each_step_as_the_message_while_the_task_runs(
    outreach: Outreach, api_url: str, outside: OutsideServices
) -> None:
    outside.server.hold("/google/oauth/token")
    with manager(outreach, api_url) as tasks:
        task_id = tasks.create(ANN)
        with testing.worker(outreach.app, scheduler=False):
            running = testing.wait_for(
                lambda: (t := tasks.get_task_by_id(task_id)) and "exchanging" in (t.message or "")
                and t, what="the task to report its step",
            )  # fmt: skip
            assert running.message == "consent given; exchanging the code for tokens"
            assert not running.is_completed
            outside.server.release("/google/oauth/token")
            assert testing.wait_for(finished(tasks, task_id)).is_success


def test_an_account_the_tool_does_not_know_fails_at_once(outreach: Outreach, api_url: str) -> None:
    with manager(outreach, api_url) as tasks:
        task_id = tasks.create(OAuthRequest("eve@workspace.example"))
        testing.drain(outreach.app)
        task = tasks.get_task_by_id(task_id)
    assert task is not None and (task.is_completed, task.is_success) == (True, False)
    assert task.message == (
        "SignInFailed: no workspace account eve@workspace.example in this tool; add it first"
    )


def test_an_unknown_id_is_no_task(outreach: Outreach, api_url: str) -> None:
    import uuid

    with manager(outreach, api_url) as tasks:
        assert tasks.get_task_by_id(uuid.uuid4()) is None
