"""Migrations apply by number, not by the highest one applied: a store that got a later
migration first (branches merged out of order) still gets the earlier one, and a store that a
newer underway migrated is refused with what to do."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from underway.errors import StoreError
from underway.stores import Store
from underway.stores.postgres import store as postgres_store
from underway.stores.sqlite import store as sqlite_store

MODULES = (sqlite_store, postgres_store)


def test_a_migration_numbered_below_one_applied_still_applies(
    make_store: Callable[..., Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    skipped = 7  # the tallies, which stats() reads; later migrations are applied without it
    for module in MODULES:
        without = [m for m in module.MIGRATIONS if m[0] != skipped]
        monkeypatch.setattr(module, "MIGRATIONS", without)
    old = make_store()
    with pytest.raises(StoreError):  # the tallies are missing: 0007 was left out
        old.stats()
    monkeypatch.undo()
    store = make_store()
    assert store.migrate() == sqlite_store.MIGRATIONS[-1][0]
    store.stats()


def test_a_store_migrated_by_a_newer_underway_is_refused(
    make_store: Callable[..., Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    make_store()
    latest = sqlite_store.MIGRATIONS[-1][0]
    for module in MODULES:
        monkeypatch.setattr(module, "MIGRATIONS", module.MIGRATIONS[:-1])
    with pytest.raises(StoreError, match=f"migration {latest}, which this underway does not know"):
        make_store()
