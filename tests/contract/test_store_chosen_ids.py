"""Store contract: caller-chosen job ids. A new id is stored as given; an id a job already has
(whatever its status) refuses the whole batch with JobExists, naming the id, and leaves the
store as it was."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable

import pytest

from underway import JobExists, Status
from underway.model import Job
from underway.stores import Store
from underway.stores.messages import Claimed, NewJob

NewJobOf = Callable[..., NewJob]


def chosen(job: NewJob, ident: uuid.UUID) -> NewJob:
    return dataclasses.replace(job, id=ident, id_chosen=True)


def test_a_chosen_id_is_the_id_of_the_stored_job(store: Store, new_job: NewJobOf) -> None:
    ident = uuid.uuid4()
    [job] = store.enqueue([chosen(new_job(), ident)])
    assert job.id == ident
    stored = store.get(ident)
    assert stored is not None and stored.status is Status.PENDING


def test_an_id_that_exists_refuses_the_batch_and_names_the_id(
    store: Store, new_job: NewJobOf
) -> None:
    ident = uuid.uuid4()
    store.enqueue([chosen(new_job(task="tests.first"), ident)])
    fresh = new_job(task="tests.other")
    with pytest.raises(JobExists, match=f"a job with id {ident} already exists: pick another id"):
        store.enqueue([fresh, chosen(new_job(task="tests.second"), ident)])
    assert store.get(fresh.id) is None  # nothing of the batch was stored
    kept = store.get(ident)
    assert kept is not None and kept.task == "tests.first"


def test_an_id_of_a_finished_job_is_refused_too(
    store: Store,
    new_job: NewJobOf,
    claim_one: Callable[..., Claimed],
    complete: Callable[..., object],
) -> None:
    ident = uuid.uuid4()
    store.enqueue([chosen(new_job(), ident)])
    complete(store, claim_one(store))
    with pytest.raises(JobExists, match=str(ident)):
        store.enqueue([chosen(new_job(), ident)])


def test_a_chosen_id_with_a_taken_unique_key_answers_the_key_holder(
    store: Store, new_job: NewJobOf, put: Callable[..., Job]
) -> None:
    holder = put(store, key="report-1")
    [answered] = store.enqueue([chosen(new_job(key="report-1"), uuid.uuid4())])
    assert answered.id == holder.id


def test_a_big_batch_of_chosen_ids_is_stored_with_them(store: Store, new_job: NewJobOf) -> None:
    # Big enough for PostgreSQL's COPY path, which chosen ids must not take.
    jobs = [chosen(new_job(), uuid.uuid4()) for _ in range(250)]
    created = store.enqueue(jobs)
    assert [j.id for j in created] == [j.id for j in jobs]
    with pytest.raises(JobExists, match=str(jobs[-1].id)):
        store.enqueue([*[new_job() for _ in range(249)], chosen(new_job(), jobs[-1].id)])
