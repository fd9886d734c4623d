"""Callbacks never reach loopback, private, link-local or metadata addresses unless allowed,
checked after DNS resolution and again at every redirect: each refusal ends the delivery with
an error that names the address and the fix, and nothing reaches the refused target."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from test_callbacks_delivery import callback_app, settled

import underway
from callback_receiver import Receiver
from underway.model import DeliveryStatus

App = Callable[..., underway.App]


def refused(
    app: underway.App, url: str, start_worker: Callable[..., Any], wait_for: Callable[..., Any]
) -> str:
    """Enqueue a job calling back to `url`, and return the error its delivery failed with."""
    job = app.tasks["tests.add"].options(callback_url=url).enqueue(1, 1)
    start_worker(app)
    delivery = wait_for(settled(app, job), what=f"the delivery to {url} to be refused")
    assert delivery.status is DeliveryStatus.FAILED
    assert len(delivery.attempts) == 1, "a refusal is final: no retries"
    assert delivery.attempts[0].status_code is None
    return delivery.last_error or ""


def test_loopback_without_an_allow_list_is_refused(
    fast_app: App, start_worker: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    with Receiver() as receiver:
        app = callback_app(fast_app, callback_allow=[])
        error = refused(app, receiver.url, start_worker, wait_for)
    assert "127.0.0.1, a loopback address" in error and "callback_allow" in error
    assert receiver.received() == []


def test_the_cloud_metadata_address_is_refused(
    fast_app: App, start_worker: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    app = callback_app(fast_app)
    error = refused(app, "http://169.254.169.254/latest/meta-data/", start_worker, wait_for)
    assert "169.254.169.254, a cloud metadata address" in error


@pytest.mark.parametrize("url", ["http://metadata.google.internal/", "http://[fd00:ec2::254]/"])
def test_other_metadata_services_are_refused(
    url: str, fast_app: App, start_worker: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    app = callback_app(fast_app)
    assert "metadata" in refused(app, url, start_worker, wait_for)


def test_a_name_that_resolves_to_a_loopback_address_is_refused(
    fast_app: App, start_worker: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    with Receiver() as receiver:
        app = callback_app(fast_app, callback_allow=[])
        url = f"http://localhost:{receiver.port}/hooks"
        error = refused(app, url, start_worker, wait_for)
    assert "localhost resolves to" in error and "loopback" in error
    assert receiver.received() == []


def test_a_redirect_to_a_refused_address_is_not_followed(
    fast_app: App, start_worker: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    # Both on loopback; only 127.0.0.1 is allowed, so the hop to 127.0.0.2 is refused.
    with Receiver(host="127.0.0.2") as hidden, Receiver() as receiver:
        receiver.answers = [(307, {"location": hidden.url})]
        app = callback_app(fast_app)
        error = refused(app, receiver.url, start_worker, wait_for)
    assert "127.0.0.2, a loopback address" in error
    assert len(receiver.received()) == 1
    assert hidden.received() == []


def test_a_redirect_to_the_metadata_address_is_not_followed(
    fast_app: App, start_worker: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    with Receiver() as receiver:
        receiver.answers = [(302, {"location": "http://169.254.169.254/latest/"})]
        app = callback_app(fast_app)
        error = refused(app, receiver.url, start_worker, wait_for)
    assert "169.254.169.254, a cloud metadata address" in error


def test_an_allowed_host_name_is_reached_through_the_checked_address(
    fast_app: App, start_worker: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    with Receiver() as receiver:
        app = callback_app(fast_app, callback_allow=["localhost"])
        url = f"http://localhost:{receiver.port}/hooks"
        job = app.tasks["tests.add"].options(callback_url=url).enqueue(1, 1)
        start_worker(app)
        delivery = wait_for(settled(app, job), what="the callback to be delivered")
    assert delivery.status is DeliveryStatus.DELIVERED
    [request] = receiver.received()
    assert request.headers["host"] == f"localhost:{receiver.port}"
