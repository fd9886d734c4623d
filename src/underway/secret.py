"""Secret arguments: an API key or a password a job needs, which no one who can read the queue
should see (decision 0030).

A `Secret` argument is sealed (Fernet: AES-128-CBC with an HMAC-SHA256) with the app's
`secret_key` before the job is stored, so the store, its backups and its dumps hold only the
sealed text; the worker opens it and the task gets the `Secret` back, whose `reveal()` is the
value. Everything that shows a job (the HTTP API, the event stream, callbacks, the dashboard,
the CLI) shows a sealed argument as "[secret]" and an argument whose name says it is a
credential (`api_token`, `password`, ...) as "[redacted]"; and the values of both are cut out
of the error message and the traceback of a failed attempt before they are stored or logged.

>>> @app.task()
... def charge(api_key: underway.Secret, cents: int) -> None:
...     payments.charge(api_key.reveal(), cents)
>>> charge.enqueue(underway.Secret(os.environ["PAYMENTS_KEY"]), 500)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .settings import Settings

#: how a sealed argument is stored: {"$secret": "<Fernet token>"}
MARK = "$secret"
SHOWN_SECRET = "[secret]"
SHOWN_REDACTED = "[redacted]"
#: the words of an argument's name that say its value is a credential
_CREDENTIAL_WORDS = frozenset(
    {"password", "passwd", "passphrase", "secret", "token", "apikey", "authorization",
     "credential", "credentials", "cookie", "privatekey", "accesskey", "signature"}
)  # fmt: skip
_PAIRS = {("api", "key"), ("private", "key"), ("access", "key"), ("client", "secret")}
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
#: a value shorter than this is not cut out of error texts ("1" would cut every digit)
_SHORTEST_SCRUBBED = 4


class Secret:
    """A value that underway stores sealed and never shows. `reveal()` is the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"a Secret holds a str, got {type(value).__name__}")
        self._value = value

    def reveal(self) -> str:
        """The value itself: hand it to what needs it, do not log it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, hashlib.sha256(self._value.encode()).digest()))

    def __reduce__(self) -> Any:
        raise TypeError("a Secret is not pickled; pass it as a job argument to have it sealed")


def is_credential_name(name: str) -> bool:
    """Whether an argument's name says its value is a credential (`api_token`, `password`,
    `clientSecret`, `X-Api-Key`...)."""
    words = [w.lower() for w in _WORD.findall(name)]
    if any(w in _CREDENTIAL_WORDS for w in words) or "".join(words) in _CREDENTIAL_WORDS:
        return True
    return any(pair in _PAIRS for pair in itertools.pairwise(words))


def _is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(MARK), str)


def _nodes(value: Any) -> Iterator[tuple[str, Any]]:
    """Every value within `value` with the name it is under ("" in a list), without
    recursion: arguments may nest as deep as JSON allows. A container met again (a cycle,
    which the JSON encoder then refuses) is not walked twice."""
    stack: list[tuple[str, Any]] = [("", value)]
    walked: set[int] = set()
    while stack:
        name, node = stack.pop()
        yield name, node
        if isinstance(node, Mapping | list | tuple):
            if id(node) in walked:
                continue
            walked.add(id(node))
        if isinstance(node, Mapping):
            stack.extend((str(k), v) for k, v in node.items())
        elif isinstance(node, list | tuple):
            stack.extend(("", v) for v in node)


def holds_secret(value: Any) -> bool:
    """Whether a Secret is anywhere in `value` (arguments, before sealing)."""
    return any(isinstance(node, Secret) for _, node in _nodes(value))


def is_sealed_anywhere(value: Any) -> bool:
    """Whether stored arguments hold a sealed Secret."""
    return any(_is_sealed(node) for _, node in _nodes(value))


def shown(value: Any) -> Any:
    """Stored arguments as people and other systems may see them: sealed Secrets as
    "[secret]", the values of credential-named arguments as "[redacted]". A copy, built
    without recursion."""
    root: list[Any] = [None]
    stack: list[tuple[Any, str, Any, Any]] = [(value, "", root, 0)]
    while stack:
        node, name, parent, key = stack.pop()
        if _is_sealed(node):
            parent[key] = SHOWN_SECRET
        elif name and node is not None and is_credential_name(name):
            parent[key] = SHOWN_REDACTED
        elif isinstance(node, dict):
            copy: dict[str, Any] = dict.fromkeys(node)  # keeps the keys' order
            parent[key] = copy
            stack.extend((v, str(k), copy, k) for k, v in node.items())
        elif isinstance(node, list):
            items: list[Any] = [None] * len(node)
            parent[key] = items
            stack.extend((v, "", items, i) for i, v in enumerate(node))
        else:
            parent[key] = node
    return root[0]


class Sealer:
    """Seals and opens Secret arguments with the app's `secret_key` (and opens what older
    keys in `previous_keys` sealed, so a key can be rotated without losing queued jobs)."""

    def __init__(self, key: str | None, previous_keys: Sequence[str] = ()) -> None:
        self._keys = [k for k in (key, *previous_keys) if k]
        self._fernet: Any = None

    @classmethod
    def of(cls, settings: Settings) -> Sealer:
        """The sealer of an app with these settings."""
        return cls(settings.secret_key, settings.secret_previous_keys)

    def seal(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The arguments with every Secret in them sealed."""
        return {k: self._seal(v) for k, v in arguments.items()}

    def open(self, stored: dict[str, Any]) -> dict[str, Any]:
        """Stored arguments with every sealed Secret opened (InvalidToken-like errors become
        ConfigurationError naming the fix)."""
        return {k: self._open(v) for k, v in stored.items()}

    def _seal(self, value: Any) -> Any:
        if isinstance(value, Secret):
            token: bytes = self._cipher().encrypt(value.reveal().encode())
            return {MARK: token.decode()}
        if isinstance(value, Mapping):
            return {k: self._seal(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._seal(v) for v in value]
        return value

    def _open(self, value: Any) -> Any:
        if _is_sealed(value):
            from cryptography.fernet import InvalidToken

            try:
                return Secret(self._cipher().decrypt(value[MARK].encode()).decode())
            except InvalidToken:
                raise ConfigurationError(
                    "a Secret argument cannot be opened with the secret_key setting or any of "
                    "secret_previous_keys: it was sealed with another key; set the key it was "
                    "sealed with as secret_key or in secret_previous_keys"
                ) from None
        if isinstance(value, dict):
            return {k: self._open(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._open(v) for v in value]
        return value

    def _cipher(self) -> Any:
        if self._fernet is None:
            if not self._keys:
                raise ConfigurationError(
                    "a Secret argument needs the secret_key setting to seal it "
                    "(UNDERWAY_SECRET_KEY): any long random string, the same in every process "
                    "of the app, e.g. from `python -c 'import secrets; "
                    "print(secrets.token_urlsafe(32))'`"
                )
            try:
                from cryptography.fernet import Fernet, MultiFernet
            except ImportError:
                raise ConfigurationError(
                    "Secret arguments need the cryptography package: pip install "
                    "'underway[secrets]'"
                ) from None
            self._fernet = MultiFernet([Fernet(_fernet_key(k)) for k in self._keys])
        return self._fernet


def _fernet_key(key: str) -> bytes:
    # Any string works as a key: Fernet's is 32 bytes, so derive them (the setting is meant to
    # be long and random; a passphrase would want a slow derivation instead).
    return base64.urlsafe_b64encode(hashlib.sha256(b"underway secret_key:" + key.encode()).digest())


def sensitive_values(stored: dict[str, Any]) -> list[str]:
    """The values to cut out of a failed attempt's error texts: every opened Secret's and
    every credential-named argument's (as text), longest first."""
    found: set[str] = set()
    for name, node in _nodes(stored):
        if isinstance(node, Secret):
            found.add(node.reveal())
        elif name and isinstance(node, str | int) and is_credential_name(name):
            found.add(str(node))
    return sorted((v for v in found if len(v) >= _SHORTEST_SCRUBBED), key=len, reverse=True)


def scrub(text: str, values: Sequence[str]) -> str:
    """`text` with every one of `values` replaced by "[redacted]"."""
    for value in values:
        if value in text:
            text = text.replace(value, SHOWN_REDACTED)
    return text
