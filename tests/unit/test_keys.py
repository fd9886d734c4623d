"""API key secrets: shaped `uw_<id>_<random>`, the id found inside them, stored only as a hash,
and nothing else ever taken for one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from underway.errors import InvalidArguments
from underway.keys import ApiKey, StoredKey, hash_secret, key_id_of, matches, new_key


def stored(secret_hash: str, revoked: bool = False) -> StoredKey:
    now = datetime.now(UTC)
    key = ApiKey("0123456789abcdef", None, None, now, revoked_at=now if revoked else None)
    return StoredKey(key, secret_hash)


def test_a_new_secret_carries_its_id_and_only_its_hash_is_kept() -> None:
    key, secret = new_key(name="ci", tenant="acme")
    assert secret.startswith(f"uw_{key.id}_") and len(secret) > 50
    assert key_id_of(secret) == key.id
    assert key.secret_hash == hash_secret(secret) and secret not in key.secret_hash
    assert new_key()[1] != new_key()[1]


@given(st.text())
def test_no_other_text_matches_a_key(text: str) -> None:
    key, secret = new_key()
    found = key_id_of(text)
    assert found is None or (len(found) == 16 and text.startswith(f"uw_{found}_"))
    assert matches(text, stored(key.secret_hash)) is (text == secret)


def test_a_revoked_key_never_matches_even_with_its_secret() -> None:
    key, secret = new_key()
    assert matches(secret, stored(key.secret_hash))
    assert not matches(secret, stored(key.secret_hash, revoked=True))


@pytest.mark.parametrize("label", ["", "   ", "a\x00b", "x" * 201])
def test_bad_names_and_tenants_are_refused(label: str) -> None:
    with pytest.raises(InvalidArguments):
        new_key(name=label)
    with pytest.raises(InvalidArguments):
        new_key(tenant=label)
