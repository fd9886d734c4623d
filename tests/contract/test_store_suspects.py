"""Suspects, the jobs a rescue put back, on every store: an ordinary claim never takes one
(it would run beside others, and a crash it causes would count against them), a suspect claim
takes only them, and `suspect_due` finds them by queue, leaving paused queues out."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from underway.stores import Store
from underway.stores.messages import Claimed

ClaimOne = Callable[..., Claimed]
RescueUntil = Callable[..., dict[uuid.UUID, Any]]
Suspect = Callable[[str], Any]


@pytest.fixture
def suspect(
    short_store: Store, put: Callable[..., Any], claim_one: ClaimOne, rescue_until: RescueUntil
) -> Suspect:
    """`suspect(queue)`: a job of `queue` on the short-lease store whose worker "crashed": its
    lease ran out and a rescue put it back."""

    def make(queue: str) -> Any:
        job = put(short_store, queue=queue)
        claim_one(short_store)
        rescue_until(short_store, job.id)
        return job

    return make


def test_a_rescued_job_is_claimed_only_as_a_suspect_and_alone(
    short_store: Store, put: Callable[..., Any], suspect: Suspect
) -> None:
    store = short_store
    crashed = suspect("q")
    innocent = [put(store, queue="q") for _ in range(3)]
    assert store.suspect_due(None) and store.suspect_due(["q"])
    assert not store.suspect_due(["other"])

    ordinary = store.claim("worker-1", None, 10)
    assert sorted(c.job.id for c in ordinary) == sorted(j.id for j in innocent)
    assert store.claim("worker-1", None, 10) == []  # the suspect is left for a suspect claim

    [claimed] = store.claim("worker-2", ["q"], 10, suspects=True)
    assert (claimed.job.id, claimed.job.attempt, claimed.job.rescues) == (crashed.id, 2, 1)
    assert not store.suspect_due(None)


def test_a_suspect_claim_takes_no_ordinary_job(store: Store, put: Callable[..., Any]) -> None:
    put(store)
    assert store.claim("worker-1", None, 10, suspects=True) == []
    assert not store.suspect_due(None)
    assert len(store.claim("worker-1", None, 10)) == 1


def test_a_suspect_of_a_paused_queue_is_not_due(short_store: Store, suspect: Suspect) -> None:
    store = short_store
    suspect("held")
    store.set_queue_paused("held", True)
    assert not store.suspect_due(None)
    assert store.claim("worker-1", None, 1, suspects=True) == []
    store.set_queue_paused("held", False)
    assert store.suspect_due(None)


def test_a_suspect_in_a_limited_queue_keeps_to_its_limit(
    short_store: Store, put: Callable[..., Any], suspect: Suspect
) -> None:
    store = short_store
    store.set_queue_concurrency("one", 1)
    suspect("one")
    other = put(store, queue="one")
    [running] = store.claim("worker-1", None, 5)
    assert running.job.id == other.id
    assert store.claim("worker-2", None, 1, suspects=True) == []  # the queue is at its limit
