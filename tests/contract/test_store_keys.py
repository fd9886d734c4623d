"""Store contract: API keys (stored hashed, found by id, revoked for good, use recorded), deleting
a finished job, and the list filters the HTTP API adds (unique key, creation time range)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

import underway
from underway.errors import InvalidArguments, InvalidTransition, JobNotFound, KeyNotFound
from underway.keys import hash_secret, matches, new_key
from underway.model import Job, Status
from underway.stores import Store
from underway.stores.messages import Claimed, JobFilter

Put = Callable[..., Job]
ClaimOne = Callable[..., Claimed]


def test_a_created_key_is_found_by_id_with_the_hash_of_its_secret(store: Store) -> None:
    record, secret = new_key(name="ci", tenant="acme")
    created = store.create_key(record)
    assert (created.id, created.name, created.tenant) == (record.id, "ci", "acme")
    assert created.created_at.tzinfo is not None
    assert created.revoked_at is None and created.last_used_at is None

    stored = store.find_key(record.id)
    assert stored is not None and stored.key == created
    assert stored.secret_hash == hash_secret(secret) != secret
    assert matches(secret, stored)
    assert not matches(secret + "x", stored)


def test_an_unknown_key_id_is_not_found(store: Store) -> None:
    assert store.find_key("0123456789abcdef") is None
    with pytest.raises(KeyNotFound, match="no API key"):
        store.revoke_key("0123456789abcdef")


def test_keys_are_listed_oldest_first_admin_keys_with_no_tenant(store: Store) -> None:
    made = [store.create_key(new_key(name=f"k{i}", tenant=t)[0])
            for i, t in enumerate(["a", None, "b"])]  # fmt: skip
    listed = store.list_keys()
    assert [k.id for k in listed] == [k.id for k in made]
    assert [k.admin for k in listed] == [False, True, False]


def test_a_revoked_key_stays_revoked_at_its_first_revocation(store: Store) -> None:
    record, secret = new_key()
    store.create_key(record)
    first = store.revoke_key(record.id)
    assert first.revoked_at is not None
    again = store.revoke_key(record.id)
    assert again.revoked_at == first.revoked_at
    stored = store.find_key(record.id)
    assert stored is not None and stored.key.revoked
    assert not matches(secret, stored)  # the right secret of a revoked key never matches


def test_touching_a_key_records_its_use(store: Store) -> None:
    record, _ = new_key()
    store.create_key(record)
    store.touch_key(record.id)
    stored = store.find_key(record.id)
    assert stored is not None and stored.key.last_used_at is not None


def test_only_a_finished_job_can_be_deleted(
    store: Store, put: Put, claim_one: ClaimOne, complete: Callable[..., object]
) -> None:
    pending = put(store)
    with pytest.raises(InvalidTransition, match="cancel it first"):
        store.delete_job(pending.id)
    claimed = claim_one(store)
    with pytest.raises(InvalidTransition):
        store.delete_job(claimed.job.id)
    complete(store, claimed)
    store.delete_job(claimed.job.id)
    assert store.get(claimed.job.id) is None
    with pytest.raises(JobNotFound):
        store.delete_job(claimed.job.id)
    with pytest.raises(JobNotFound):
        store.delete_job(uuid.uuid4())


@pytest.mark.parametrize("status", [Status.FAILED, Status.CANCELLED])
def test_failed_and_cancelled_jobs_can_be_deleted(
    store: Store, put: Put, claim_one: ClaimOne, fail: Callable[..., object], status: Status
) -> None:
    job = put(store)
    if status is Status.FAILED:
        fail(store, claim_one(store))
    else:
        store.cancel(job.id)
    store.delete_job(job.id)
    assert store.get(job.id) is None


def test_list_by_unique_key_finds_finished_jobs_too(
    store: Store, put: Put, claim_one: ClaimOne, complete: Callable[..., object]
) -> None:
    first = put(store, key="report:1")
    complete(store, claim_one(store))
    second = put(store, key="report:1")
    put(store, key="report:2")
    found = store.list_jobs(JobFilter(key="report:1"), 10, None).jobs
    assert [j.id for j in found] == [second.id, first.id]


def test_list_by_creation_time_range(store: Store, put: Put) -> None:
    jobs = [put(store) for _ in range(3)]
    middle = jobs[1].created_at
    after = store.list_jobs(JobFilter(created_after=middle), 10, None).jobs
    assert {j.id for j in after} >= {jobs[1].id, jobs[2].id}
    assert all(j.created_at >= middle for j in after)
    before = store.list_jobs(JobFilter(created_before=middle), 10, None).jobs
    assert all(j.created_at < middle for j in before)
    assert jobs[1].id not in {j.id for j in before}
    future = datetime.now(UTC) + timedelta(days=1)
    assert store.list_jobs(JobFilter(created_after=future), 10, None).jobs == []
    assert len(store.list_jobs(JobFilter(created_before=future), 10, None).jobs) == 3


def test_a_naive_time_bound_is_refused() -> None:
    with pytest.raises(InvalidArguments, match="timezone-aware"):
        JobFilter(created_after=datetime(2026, 1, 1))


def test_stats_of_one_tenant_count_its_jobs_only(store: Store, put: Put) -> None:
    for tenant in ("acme", "acme", "globex", None):
        put(store, tenant=tenant, task="tests.a" if tenant else "tests.b")
    put(store, tenant="acme", task="tests.a", delay=3600)
    acme = store.stats("acme")
    assert acme.total == 3 and acme.by_status["pending"] == 3 and acme.scheduled == 1
    assert set(acme.by_task) == {"tests.a"}
    assert store.stats("nobody").total == 0
    assert store.stats().total == 5


def test_app_authenticates_only_live_keys_and_records_their_use(
    make_app: Callable[..., underway.App],
) -> None:
    app = make_app()
    key, secret = app.create_key(name="ci", tenant="acme")
    found = app.authenticate(secret)
    assert found is not None and (found.id, found.tenant) == (key.id, "acme")
    [listed] = app.list_keys()
    assert listed.last_used_at is not None
    for wrong in ("", "uw_", secret + "x", secret.replace(key.id, "0" * 16), "Bearer " + secret):
        assert app.authenticate(wrong) is None
    app.revoke_key(key.id)
    assert app.authenticate(secret) is None


def test_app_retries_and_deletes_the_dead_letters_by_filter(
    make_app: Callable[..., underway.App],
) -> None:
    app = make_app()

    @app.task(name="tests.boom", max_attempts=1)
    def boom() -> None:
        raise ValueError("boom")

    for queue in ("a", "a", "b"):
        boom.options(queue=queue).enqueue()
    app.run_worker(burst=True, handle_signals=False)
    assert app.retry_failed(queue="a") == 2
    assert {j.queue for j in app.list_jobs(status="pending").jobs} == {"a"}
    app.run_worker(burst=True, handle_signals=False)
    assert app.delete_failed(queue="b") == 1
    assert app.delete_failed() == 2
    assert app.list_jobs().jobs == []
