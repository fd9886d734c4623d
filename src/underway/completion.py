"""Completing a job inside the task's own database transaction (`ctx.complete_in`): the task's
effect and the job's completion commit together or not at all
(docs/decisions/0019-complete-in-transaction.md)."""

from __future__ import annotations

import uuid
from typing import Any

from .errors import ConfigurationError, LeaseLost
from .stores import Store, TransactionalCompletion
from .stores.messages import Outcome


class InTransaction:
    """What a running attempt needs to complete its job on the task's own connection: the
    store and the attempt's lease token. `attempted` tells the worker to look, once the task
    returns, whether the completion committed before it writes anything itself."""

    def __init__(self, store: Store | None, job_id: uuid.UUID, token: str) -> None:
        self.store = store
        self.job_id = job_id
        self.token = token
        self.attempted = False

    def outcome(self, result_json: str) -> Outcome:
        return Outcome.completed(self.job_id, self.token, result_json)

    def write(self, connection: Any, outcome: Outcome) -> None:
        landed = self._store().complete_on(connection, outcome)
        self._landed(landed)

    async def write_async(self, connection: Any, outcome: Outcome) -> None:
        landed = await self._store().complete_on_async(connection, outcome)
        self._landed(landed)

    def _store(self) -> TransactionalCompletion:
        store = self.store
        if store is None:
            raise ConfigurationError(
                "ctx.complete_in completes the job a worker is running; this context has no "
                "worker behind it (a task called directly): there is no job to complete"
            )
        if not isinstance(store, TransactionalCompletion):
            raise ConfigurationError(
                "ctx.complete_in writes the completion in your own transaction; that needs the "
                f"PostgreSQL store (this app uses {type(store).__name__}). On SQLite make the "
                "effect idempotent instead: in the same transaction as the effect, insert a row "
                "under a unique key of your own table (the job's key, its slot, or (thing, "
                "minute)) and skip the effect when that row exists"
            )
        self.attempted = True
        return store

    def _landed(self, landed: bool) -> None:
        if not landed:
            raise LeaseLost(
                f"job {self.job_id} is no longer running under this attempt's lease (its lease "
                "ran out and another worker took it, or it is completed already): roll back "
                "your transaction (let this error propagate) so its effect does not happen"
            )
