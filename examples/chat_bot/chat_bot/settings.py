"""The maintenance settings, read from the environment under the seed's names (its
`AppSettings` fields); every interval is in seconds."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from underway import ConfigurationError

#: where the bot keeps its documents and OCR outputs, unless DOCUMENTS_DIR says otherwise
DOCUMENTS_DIR = "documents"


@dataclass(frozen=True, slots=True)
class MaintenanceSettings:
    """How often each maintenance task runs and what it keeps."""

    db_cleanup_interval: float = 3600.0
    db_cleanup_days: float = 30.0  # audit rows and unfinished transactions older than this go
    cache_cleanup_interval: float = 300.0
    session_cleanup_interval: float = 600.0
    documents_cleanup_interval: float = 1800.0
    documents_cleanup_hours: float = 24.0  # temporary OCR outputs older than this go
    documents_storage_quota_mb: float = 500.0  # then the oldest go until the folder fits
    documents_dir: str = DOCUMENTS_DIR
    health_check_interval: float = 60.0
    metrics_collection_interval: float = 60.0
    #: the critical services the health check probes and metrics collection asks for stats:
    #: name to base URL (`CHAT_BOT_SERVICES="rate_limiter=http://127.0.0.1:9001,..."`)
    services: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MaintenanceSettings:
        """The settings in `environ` (default `os.environ`); a missing one keeps its default."""
        env = os.environ if environ is None else environ
        numbers = {attribute: _number(env, variable) for attribute, variable in NUMBERS.items()}
        return cls(
            **{k: v for k, v in numbers.items() if v is not None},
            documents_dir=env.get("DOCUMENTS_DIR", DOCUMENTS_DIR),
            services=_services(env.get("CHAT_BOT_SERVICES", "")),
        )


#: attribute to the environment variable the seed's deployment sets
NUMBERS = {
    "db_cleanup_interval": "DB_CLEANUP_INTERVAL",
    "db_cleanup_days": "DB_CLEANUP_DAYS",
    "cache_cleanup_interval": "CACHE_CLEANUP_INTERVAL",
    "session_cleanup_interval": "SESSION_CLEANUP_INTERVAL",
    "documents_cleanup_interval": "DOCUMENTS_CLEANUP_INTERVAL_SECONDS",
    "documents_cleanup_hours": "DOCUMENTS_CLEANUP_HOURS",
    "documents_storage_quota_mb": "DOCUMENTS_STORAGE_QUOTA_MB",
    "health_check_interval": "HEALTH_CHECK_TASK_INTERVAL",
    "metrics_collection_interval": "METRICS_COLLECTION_INTERVAL",
}


def _number(env: Mapping[str, str], variable: str) -> float | None:
    text = env.get(variable)
    if text is None or not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        raise ConfigurationError(f"{variable} must be a number of seconds, got {text!r}") from None
    if value <= 0:
        raise ConfigurationError(f"{variable} must be above 0, got {text!r}")
    return value


def _services(text: str) -> dict[str, str]:
    services = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, url = item.partition("=")
        if not sep or not name or not url.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"CHAT_BOT_SERVICES takes name=http://host:port items separated by commas, "
                f"got {item!r}"
            )
        services[name.strip()] = url.strip().rstrip("/")
    return services
