"""Where the services find their database and cache: set once with `configure(...)`, or read
from the environment (`VOICE_CALLS_DATABASE_URL`, default `sqlite:///voice_calls.db`;
`VOICE_CALLS_CACHE_URL`, the cache service, none by default)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .cache import Cache
from .db import Database

DATABASE_VAR = "VOICE_CALLS_DATABASE_URL"
CACHE_VAR = "VOICE_CALLS_CACHE_URL"


@dataclass(frozen=True)
class Services:
    db: Database
    cache: Cache | None


_current: Services | None = None


def configure(database_url: str | None = None, cache_url: str | None = None) -> Services:
    """Point the services at a database (and a cache service); makes the tables."""
    global _current
    url = database_url or os.environ.get(DATABASE_VAR) or "sqlite:///voice_calls.db"
    cache = cache_url or os.environ.get(CACHE_VAR)
    services = Services(Database(url), Cache(cache) if cache else None)
    services.db.create_tables()
    _current = services
    return services


def current() -> Services:
    """The configured services (configured from the environment on first use)."""
    return _current or configure()
