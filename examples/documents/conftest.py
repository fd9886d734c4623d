"""Fixtures of the DocFlow example: a DocFlow on each store (SQLite files; PostgreSQL, in a
schema of its own, when UNDERWAY_TEST_POSTGRES_URL names a server, as `./run test` does),
with its local billing, notification and webhook services running."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from docflow_support import Running  # noqa: E402

from documents import (  # noqa: E402
    Billing,
    DocFlow,
    LocalService,
    Notifications,
    Outside,
    WebhookReceiver,
    create,
)
from underway import Backoff  # noqa: E402
from underway.callbacks import new_secret  # noqa: E402

POSTGRES_URL = os.environ.get("UNDERWAY_TEST_POSTGRES_URL", "")
if not POSTGRES_URL and os.environ.get("CI") == "true":
    raise RuntimeError("CI=true but UNDERWAY_TEST_POSTGRES_URL is not set")
KINDS = ["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"]
#: retries within a fraction of a second, so a test sees a job's whole life
FAST_RETRY = Backoff(base=0.01, factor=2, max=0.05, jitter=False)


@pytest.fixture(params=KINDS)
def urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(underway's store, DocFlow's tables) for one test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'jobs.db'}", f"sqlite:///{tmp_path / 'docflow.db'}"
        return
    import psycopg
    from psycopg import sql

    schema = f"docflow_{uuid.uuid4().hex[:12]}"
    separator = "&" if "?" in POSTGRES_URL else "?"
    url = f"{POSTGRES_URL}{separator}schema={schema}"
    yield url, url
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def docflow(urls: tuple[str, str], tmp_path: Path) -> Iterator[Running]:
    """DocFlow with tenants acme and globex (each with a webhook endpoint on the receiver)."""
    secret = new_secret()
    billing, notifications, receiver = Billing(), Notifications(), WebhookReceiver(secret)
    made: list[DocFlow] = []
    with (
        LocalService(billing.handle) as billed,
        LocalService(notifications.handle) as notified,
        LocalService(receiver.handle) as hooks,
    ):
        outside = Outside(billing_url=billed.url, notifications_url=notified.url)

        def make() -> DocFlow:
            flow = create(
                urls[0], urls[1], tmp_path / "storage", outside, retry=FAST_RETRY,
                webhook_secret=secret, callback_allow=["127.0.0.1/32"],
                callback_backoff_base_seconds=0.05, callback_backoff_max_seconds=0.2,
                poll_seconds=0.05,
            )  # fmt: skip
            made.append(flow)
            return flow

        flow = make()
        for tenant in ("acme", "globex"):
            flow.platform.add_tenant(tenant, webhook_url=f"{hooks.url}/hooks/{tenant}")
        yield Running(flow, billing, notifications, receiver, hooks.url, make)
        for each in made:
            each.app.close()
