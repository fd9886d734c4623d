"""The store's schedule rows: registering again keeps the anchor, unless told to re-anchor (a
scheduler booting with a `first_after_boot` rule). Runs on both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from underway.schedule import Overlap
from underway.stores import Store

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
