"""The store's schedule rows: registering again keeps the anchor, unless told to re-anchor (a
scheduler booting with a `first_after_boot` rule); schedules put at run time, their removal and
restart; scheduler beats. Runs on both stores."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from underway.errors import ScheduleDeclaredInCode, ScheduleNotFound
from underway.schedule import Overlap
from underway.stores import Store
from underway.stores.messages import NewJob

ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)


def test_registering_again_keeps_the_anchor_unless_reanchored(store: Store) -> None:
    first = store.register_schedule("monitor", "tests.periodic", "every 300s", ANCHOR)
    assert first.anchor == ANCHOR and first.last_slot is None
    store.fire_schedule("monitor", ANCHOR, None, Overlap.ALLOW)

    later = ANCHOR + timedelta(hours=1)
    kept = store.register_schedule("monitor", "tests.periodic", "every 5m", later)
    assert (kept.anchor, kept.rule, kept.last_slot) == (ANCHOR, "every 5m", ANCHOR)

    moved = store.register_schedule("monitor", "tests.periodic", "every 5m", later, reanchor=True)
    assert moved.anchor == later
    assert moved.last_slot == ANCHOR  # what was handled stays handled
    assert [s.anchor for s in store.schedule_states() if s.name == "monitor"] == [later]


# --- schedules put at run time (migration 0008) ----------------------------------------------


def test_put_adds_then_updates_keeping_anchor_and_slots(store: Store) -> None:
    added = store.put_schedule("stored", "tests.periodic", "every 60s", '{"v": 1}', ANCHOR)
    assert (added.anchor, added.definition, added.last_slot) == (ANCHOR, '{"v": 1}', None)
    store.fire_schedule("stored", ANCHOR, None, Overlap.ALLOW)
    later = ANCHOR + timedelta(hours=1)
    updated = store.put_schedule("stored", "tests.other", "every 5m", '{"v": 2}', later, "acme")
    assert (updated.anchor, updated.last_slot) == (ANCHOR, ANCHOR)
    assert (updated.task, updated.rule, updated.definition, updated.tenant) == (
        "tests.other", "every 5m", '{"v": 2}', "acme",
    )  # fmt: skip


def test_a_name_declared_in_code_cannot_be_put_or_removed(store: Store) -> None:
    store.register_schedule("coded", "tests.periodic", "every 60s", ANCHOR)
    with pytest.raises(ScheduleDeclaredInCode, match="declared in code"):
        store.put_schedule("coded", "tests.periodic", "every 5s", "{}", ANCHOR)
    with pytest.raises(ScheduleDeclaredInCode):
        store.remove_schedule("coded")
    (state,) = [s for s in store.schedule_states() if s.name == "coded"]
    assert (state.rule, state.definition) == ("every 60s", None)


def test_code_declaring_a_stored_name_takes_it_over(store: Store) -> None:
    store.put_schedule("taken", "tests.periodic", "every 60s", "{}", ANCHOR)
    state = store.register_schedule("taken", "tests.periodic", "every 5m", ANCHOR)
    assert (state.rule, state.definition) == ("every 5m", None)


def test_remove_deletes_a_stored_schedule_and_refuses_an_unknown_one(store: Store) -> None:
    store.put_schedule("gone", "tests.periodic", "every 60s", "{}", ANCHOR)
    store.remove_schedule("gone")
    assert "gone" not in {s.name for s in store.schedule_states()}
    assert store.fire_schedule("gone", ANCHOR, None, Overlap.ALLOW) is None
    with pytest.raises(ScheduleNotFound):
        store.remove_schedule("gone")


def test_restart_resumes_and_moves_the_anchor(store: Store) -> None:
    store.register_schedule("again", "tests.periodic", "every 60s", ANCHOR)
    store.fire_schedule("again", ANCHOR, None, Overlap.ALLOW)
    store.set_schedule_paused("again", True)
    later = ANCHOR + timedelta(minutes=30)
    store.restart_schedule("again", later)
    (state,) = [s for s in store.schedule_states() if s.name == "again"]
    assert (state.paused, state.anchor, state.last_slot) == (False, later, ANCHOR)
    with pytest.raises(ScheduleNotFound):
        store.restart_schedule("no-such", later)


def test_schedulers_alive_counts_unexpired_beats(store: Store) -> None:
    assert store.schedulers_alive() == 0
    store.beat_scheduler("one", 30.0)
    store.beat_scheduler("two", 30.0)
    store.beat_scheduler("one", 30.0)  # a second beat is the same scheduler
    assert store.schedulers_alive() == 2
    store.forget_scheduler("one")
    assert store.schedulers_alive() == 1
    store.beat_scheduler("two", -1.0)  # its lease ran out
    assert store.schedulers_alive() == 0


# --- a slot with a job per tenant (migration 0011) -------------------------------------------


def test_fire_slot_inserts_every_tenant_job_of_a_slot_once(
    store: Store, new_job: Callable[..., NewJob]
) -> None:
    tenants = '["acme", "globex"]'
    state = store.register_schedule("usage", "tests.periodic", "every 60s", ANCHOR, tenants=tenants)
    assert state.tenants == tenants

    def jobs(slot: datetime) -> list[NewJob]:
        made = [new_job(task="tests.periodic", tenant=t, key=f"usage:{slot}:{t}") for t in
                ("acme", "globex")]  # fmt: skip
        for job in made:
            job.schedule, job.slot = "usage", slot
        return made

    fired = store.fire_slot("usage", ANCHOR, jobs(ANCHOR), Overlap.ALLOW)
    assert [(j.tenant, j.slot, j.schedule) for j in fired] == [
        ("acme", ANCHOR, "usage"), ("globex", ANCHOR, "usage"),
    ]  # fmt: skip
    assert store.fire_slot("usage", ANCHOR, jobs(ANCHOR), Overlap.ALLOW) == []  # handled once
    later = ANCHOR + timedelta(minutes=1)
    assert store.fire_slot("usage", later, jobs(later), Overlap.SKIP) == []  # still unfinished
    (row,) = [s for s in store.schedule_states() if s.name == "usage"]
    assert (row.last_slot, row.run_count) == (later, 1)
    # an empty slot (no tenant listed) is handled without a job
    assert store.fire_slot("usage", later + timedelta(minutes=1), [], Overlap.ALLOW) == []
    put = store.put_schedule("stored-usage", "tests.periodic", "every 60s", "{}", ANCHOR,
                             tenants='["acme"]')  # fmt: skip
    assert put.tenants == '["acme"]'
