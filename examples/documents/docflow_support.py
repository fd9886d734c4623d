"""What the DocFlow tests share besides fixtures: a running DocFlow and its services."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import underway
from documents import Billing, DocFlow, Notifications, WebhookReceiver
from underway import testing


@dataclass
class Running:
    """A DocFlow with its outside services, and what each service received."""

    flow: DocFlow
    billing: Billing
    notifications: Notifications
    receiver: WebhookReceiver
    receiver_url: str
    make: Callable[[], DocFlow]  # another process of the same DocFlow (same tables and store)

    @property
    def app(self) -> underway.App:
        return self.flow.app

    def scheduler(self, clock: testing.Clock, flow: DocFlow | None = None) -> Any:
        return testing.scheduler((flow or self.flow).app, clock=clock)

    def settle(self, timeout: float = 30.0) -> None:
        """Run jobs until none is pending or running (retries due in a moment included)."""
        deadline = time.monotonic() + timeout
        while True:
            testing.drain(self.app)
            stats = self.app.stats()
            if stats.by_status.get("pending", 0) + stats.by_status.get("running", 0) == 0:
                return
            assert time.monotonic() < deadline, f"jobs still unfinished: {stats.by_status}"
            time.sleep(0.02)
