"""Standard Webhooks signatures: `webhook-id`, `webhook-timestamp` and `webhook-signature:
v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed by the app's `whsec_` secret.
https://www.standardwebhooks.com/ — receivers verify with any of its libraries."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from ..errors import ConfigurationError

PREFIX = "whsec_"
#: shorter keys are refused: HMAC-SHA256 wants at least 128 bits of randomness
MIN_KEY_BYTES = 16


def new_secret() -> str:
    """A fresh signing secret (`whsec_` and 32 random bytes in base64), for
    `App(webhook_secret=...)` or UNDERWAY_WEBHOOK_SECRET.

    >>> new_secret().startswith("whsec_")
    True
    """
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def secret_key(secret: str, setting: str = "webhook_secret") -> bytes:
    """The HMAC key a `whsec_<base64>` secret holds (`setting` names where it came from)."""
    fix = "make one with: python -c 'import underway.callbacks as c; print(c.new_secret())'"
    if not isinstance(secret, str) or not secret.startswith(PREFIX):
        raise ConfigurationError(
            f"setting {setting} must start with {PREFIX!r} followed by base64 "
            f"(from UNDERWAY_{setting.upper()} or App({setting}=...)); {fix}"
        )
    encoded = secret[len(PREFIX) :]
    try:  # padding is optional, as in the Standard Webhooks libraries
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(
            f"setting {setting} is not {PREFIX} followed by valid base64; {fix}"
        ) from None
    if len(key) < MIN_KEY_BYTES:
        raise ConfigurationError(
            f"setting {setting} holds {len(key)} bytes, fewer than {MIN_KEY_BYTES}; {fix}"
        )
    return key


@dataclass(frozen=True, slots=True)
class Signer:
    """Signs callback bodies with the current key and, while a rotation is under way, with
    the previous ones too: one signature each, space-separated, as Standard Webhooks has it,
    so a receiver verifies with whichever of the secrets it holds.

    >>> signer = Signer.of("whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    >>> signer.signature("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE='
    """

    keys: tuple[bytes, ...]

    @classmethod
    def of(cls, secret: str, previous: tuple[str, ...] = ()) -> Signer:
        keys = [secret_key(secret)]
        keys += [secret_key(old, "webhook_previous_secrets") for old in previous]
        return cls(tuple(dict.fromkeys(keys)))

    def signature(self, message_id: str, timestamp: int, body: bytes) -> str:
        """The `webhook-signature` value: for each key, `v1,` and the base64 HMAC-SHA256 of
        `{id}.{timestamp}.{body}`; the current key's first."""
        signed = f"{message_id}.{timestamp}.".encode() + body
        return " ".join(
            "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
            for key in self.keys
        )

    def headers(self, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
        """The three Standard Webhooks headers of one attempt."""
        return {
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": self.signature(message_id, timestamp, body),
        }
