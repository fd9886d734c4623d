"""Every tunable in one place: defaults here, `UNDERWAY_*` environment variables over them,
`App(...)` keyword arguments over both."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError

DEFAULT_DATABASE_URL = "sqlite:///underway.db"
#: the longest duration any setting may have
MAX_SECONDS = 1e9


@dataclass(frozen=True, slots=True)
class Settings:
    """Settings of an app and its workers.

    >>> Settings.load(lease_seconds=10).lease_seconds
    10.0
    """

    #: where jobs live: sqlite:///path/to/file.db or postgresql://user@host/db
    database_url: str = DEFAULT_DATABASE_URL
    #: how long a claimed job stays leased without a heartbeat before another worker takes it back
    lease_seconds: float = 30.0
    #: how often a worker renews its leases and learns of cancel requests
    heartbeat_seconds: float = 2.0
    #: longest an idle worker sleeps before it asks the store again (a backstop to wake-ups)
    poll_seconds: float = 1.0
    #: SQLite: how often an idle worker reads the change counter (`PRAGMA data_version`)
    wake_check_seconds: float = 0.002
    #: how long running jobs may finish after SIGTERM before they are handed back
    shutdown_grace_seconds: float = 10.0
    #: a running job's first report after a quiet spell is written at once; later ones are
    #: coalesced and written at most this often per worker (watchers then see the latest).
    #: Jobs report out of step, so a report waits half of this on average before it is seen
    progress_flush_seconds: float = 0.025
    #: how long the change feed keeps changes that `app.watch(since=...)` can resume from (a
    #: deleted job's changes go with it)
    change_retention_seconds: float = 3600.0
    #: how many times a job may lose its worker (crash, kill) before it fails for good
    max_rescues: int = 3
    #: refuse arguments whose JSON is larger than this
    max_args_bytes: int = 1024 * 1024
    #: default number of jobs one worker runs at once
    concurrency: int = 10
    #: finished jobs (completed, cancelled) are deleted this long after they finished
    retention_seconds: float = 7 * 24 * 3600.0
    #: failed jobs (the dead letters) are deleted this long after they failed; 0 keeps them
    failed_retention_seconds: float = 0.0
    #: how often each worker prunes old jobs (0 turns pruning by workers off)
    prune_interval_seconds: float = 600.0
    #: PostgreSQL: the schema that holds underway's tables (also `?schema=` in the URL)
    schema: str = "public"
    #: PostgreSQL: most connections one process keeps open
    pool_size: int = 10
    #: PostgreSQL: how long to wait for the first connection
    connect_timeout_seconds: float = 10.0
    # --- tenant quotas (docs/guide.md#tenant-quotas) ---
    #: jobs per second each tenant may enqueue on average, a token bucket the store keeps for
    #: all processes; 0 turns quotas off (per-tenant overrides: App(tenant_quotas=...))
    tenant_enqueue_rate: float = 0.0
    #: how many jobs a tenant may enqueue at once (the bucket's size); 0: the rate rounded up,
    #: at least 1
    tenant_enqueue_burst: int = 0
    # --- completion callbacks (docs/guide.md#callbacks) ---
    #: signs callbacks (Standard Webhooks): `whsec_` and base64 of the key; a job may carry a
    #: callback_url only when this is set
    webhook_secret: str | None = dataclasses.field(default=None, repr=False)
    #: secrets being rotated out: each callback is signed with them too (one signature per
    #: secret in `webhook-signature`), so a receiver still on an old one verifies until it
    #: has the new (env: comma-separated)
    webhook_previous_secrets: tuple[str, ...] = dataclasses.field(default=(), repr=False)
    #: seals `underway.Secret` arguments before they are stored (decision 0030): any long
    #: random string, the same in every process of the app
    secret_key: str | None = dataclasses.field(default=None, repr=False)
    #: older secret keys, still opening what they sealed while a key is rotated (env:
    #: comma-separated)
    secret_previous_keys: tuple[str, ...] = dataclasses.field(default=(), repr=False)
    #: networks ("10.0.0.0/8", "127.0.0.1/32") and host names callbacks may reach although
    #: they are loopback, private, link-local or metadata addresses (env: comma-separated)
    callback_allow: tuple[str, ...] = ()
    #: how long one POST (one redirect hop) may take, answer included however slowly it
    #: comes, before the attempt counts as failed
    callback_timeout_seconds: float = 10.0
    #: attempts of one delivery before it fails for good
    callback_max_attempts: int = 12
    #: wait after the first failed attempt; it doubles after each (with jitter) up to the cap
    callback_backoff_base_seconds: float = 5.0
    callback_backoff_max_seconds: float = 3600.0

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, /, **overrides: Any) -> Settings:
        """Defaults, then `UNDERWAY_<NAME>` variables from `env` (default: os.environ),
        then the keyword overrides that are not None."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(f"UNDERWAY_{f.name.upper()}")
            if raw is not None and raw != "":
                values[f.name] = _convert(f.name, f.type, raw)
        for name, value in overrides.items():
            if name not in cls.__dataclass_fields__:
                known = ", ".join(cls.__dataclass_fields__)
                raise ConfigurationError(f"unknown setting {name!r}; known settings: {known}")
            if value is not None:
                values[name] = _convert(name, cls.__dataclass_fields__[name].type, value)
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        self._check_durations()
        for name in (
            "lease_seconds",
            "heartbeat_seconds",
            "poll_seconds",
            "wake_check_seconds",
            "progress_flush_seconds",
        ):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"setting {name} must be > 0, got {getattr(self, name)}")
        if self.heartbeat_seconds >= self.lease_seconds:
            raise ConfigurationError(
                f"heartbeat_seconds ({self.heartbeat_seconds}) must be shorter than "
                f"lease_seconds ({self.lease_seconds}), or leases expire between heartbeats"
            )
        if self.pool_size < 2:
            raise ConfigurationError("pool_size must be >= 2 (a worker needs two connections)")
        if self.concurrency < 1 or self.max_args_bytes < 1 or self.max_rescues < 0:
            raise ConfigurationError(
                "concurrency and max_args_bytes must be >= 1, max_rescues >= 0"
            )
        if (
            min(self.retention_seconds, self.failed_retention_seconds, self.prune_interval_seconds)
            < 0
        ):
            raise ConfigurationError("retention and prune interval settings must be >= 0")
        if self.shutdown_grace_seconds < 0:
            raise ConfigurationError("shutdown_grace_seconds must be >= 0")
        self._check_callbacks()
        self._check_quotas()

    def _check_quotas(self) -> None:
        rate, burst = self.tenant_enqueue_rate, self.tenant_enqueue_burst
        if isinstance(rate, bool) or not isinstance(rate, float | int) or not math.isfinite(rate):
            raise ConfigurationError(
                f"setting tenant_enqueue_rate must be a finite number of jobs per second, got "
                f"{rate!r} (from UNDERWAY_TENANT_ENQUEUE_RATE or App(tenant_enqueue_rate=...))"
            )
        if rate < 0:
            raise ConfigurationError(
                f"setting tenant_enqueue_rate must be >= 0 (0: no quota), got {rate}"
            )
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 0:
            raise ConfigurationError(
                f"setting tenant_enqueue_burst must be a whole number of jobs >= 1 (or 0 for "
                f"the rate rounded up), got {burst!r}"
            )

    def _check_durations(self) -> None:
        # A duration the stores cannot add to a time (1e300 s overflows PostgreSQL's interval
        # and made every claim fail forever), or NaN, which compares false with everything.
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name.endswith("_seconds") and not (
                isinstance(value, float | int) and math.isfinite(value) and value <= MAX_SECONDS
            ):
                raise ConfigurationError(
                    f"setting {name} must be a finite number of seconds up to "
                    f"{MAX_SECONDS:,.0f} (about 31 years), got {value!r}"
                )

    def _check_callbacks(self) -> None:
        # Imported here: the callbacks package reads Settings, and settings must stay a leaf.
        from .callbacks.guard import Allow
        from .callbacks.signing import secret_key

        if self.webhook_secret is not None:
            secret_key(self.webhook_secret)
        if self.webhook_previous_secrets and self.webhook_secret is None:
            raise ConfigurationError(
                "webhook_previous_secrets is set without webhook_secret: set the new secret "
                "as webhook_secret and keep the old ones in webhook_previous_secrets"
            )
        for previous in self.webhook_previous_secrets:
            secret_key(previous, "webhook_previous_secrets")
        if self.secret_previous_keys and self.secret_key is None:
            raise ConfigurationError(
                "secret_previous_keys is set without secret_key: set the new key as "
                "secret_key and keep the old ones in secret_previous_keys"
            )
        for key in (self.secret_key, *self.secret_previous_keys):
            if key is not None and len(key) < 16:
                raise ConfigurationError(
                    "a secret key must be at least 16 characters, better 32 random ones: "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
                )
        Allow.parse(self.callback_allow)
        if self.callback_timeout_seconds <= 0 or self.callback_max_attempts < 1:
            raise ConfigurationError(
                "callback_timeout_seconds must be > 0 and callback_max_attempts >= 1"
            )
        if min(self.callback_backoff_base_seconds, self.callback_backoff_max_seconds) < 0:
            raise ConfigurationError("callback backoff settings must be >= 0 seconds")


def _convert(name: str, type_name: Any, raw: Any) -> Any:
    if str(type_name) == "tuple[str, ...]":
        return _texts(name, raw)
    kind = {"float": float, "int": int, "str": str}.get(str(type_name), str)
    problem = ConfigurationError(
        f"setting {name} must be a{'n' if kind is int else ''} {kind.__name__}"
        f"{' (finite)' if kind is float else ''}, got {raw!r} "
        f"(from UNDERWAY_{name.upper()} or App({name}=...))"
    )
    try:
        if kind is int:
            # Refuse 2.5 rather than quietly running with 2.
            if isinstance(raw, float) and not raw.is_integer():
                raise problem
            value: Any = int(raw)
        else:
            value = kind(raw)
    except (TypeError, ValueError, OverflowError):
        raise problem from None
    if kind is float and not math.isfinite(value):
        raise problem
    return value


def _texts(name: str, raw: Any) -> tuple[str, ...]:
    """A list setting: comma-separated text (as environment variables carry it) or a list."""
    items = raw.split(",") if isinstance(raw, str) else raw
    try:
        texts = tuple(str(item).strip() for item in items)
    except TypeError:
        raise ConfigurationError(
            f"setting {name} must be a list of strings or comma-separated text, got {raw!r} "
            f"(from UNDERWAY_{name.upper()} or App({name}=...))"
        ) from None
    return tuple(text for text in texts if text)
