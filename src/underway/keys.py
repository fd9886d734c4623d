"""API keys: bearer tokens for the HTTP API, as records and the pure rules for their secrets.

A secret reads `uw_<id>_<random>`: the id finds the key's row without scanning, and the
random part (32 bytes from `secrets`) is what makes it unguessable. The store keeps only the
sha256 of the whole secret. A plain hash is enough for a high-entropy token (a slow password
hash protects guessable passwords, which these are not), and the comparison runs in constant
time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from .errors import InvalidArguments

PREFIX = "uw"
#: longest name or tenant a key may carry
MAX_LABEL = 200


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as the store keeps it, without its secret."""

    id: str
    name: str | None
    tenant: str | None  # None: an admin key, which sees every tenant
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def admin(self) -> bool:
        return self.tenant is None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key about to be stored: its id, labels and the hash of its secret."""

    id: str
    name: str | None
    tenant: str | None
    secret_hash: str


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A key with the hash its secret must match."""

    key: ApiKey
    secret_hash: str


def new_key(name: str | None = None, tenant: str | None = None) -> tuple[NewKey, str]:
    """A fresh key and its secret (the only time the secret exists in the clear).

    >>> key, secret = new_key(name="ci", tenant="acme")
    >>> secret.startswith(f"uw_{key.id}_") and key_id_of(secret) == key.id
    True
    """
    for label, value in (("name", name), ("tenant", tenant)):
        _check_label(label, value)
    key_id = secrets.token_hex(8)
    secret = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    return NewKey(key_id, name, tenant, hash_secret(secret)), secret


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def key_id_of(secret: str) -> str | None:
    """The key id inside a secret, or None when the text is not shaped like one."""
    prefix, _, rest = secret.partition("_")
    key_id, sep, random = rest.partition("_")
    if prefix != PREFIX or not sep or not random or len(key_id) != 16:
        return None
    if any(c not in "0123456789abcdef" for c in key_id):
        return None
    return key_id


def matches(secret: str, stored: StoredKey) -> bool:
    """Whether `secret` is this key's and the key still works (revoked keys never do)."""
    same = hmac.compare_digest(hash_secret(secret), stored.secret_hash)
    return same and not stored.key.revoked


def _check_label(label: str, value: str | None) -> None:
    if value is None:
        return
    if not value.strip():
        raise InvalidArguments(f"a key's {label} cannot be empty; leave it out instead")
    if len(value) > MAX_LABEL or "\x00" in value:
        raise InvalidArguments(
            f"a key's {label} must be at most {MAX_LABEL} characters, without NUL characters"
        )
