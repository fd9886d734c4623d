"""Writing outcomes on PostgreSQL: the finish statement's parameters, and a completion written
on the caller's own (sync or async) connection inside its transaction (`ctx.complete_in`,
docs/decisions/0019-complete-in-transaction.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import tuple_row

from ...errors import ConfigurationError
from ...model import Status
from ..messages import Ending, Outcome

_FINISH_COLUMNS = (
    "ids", "tokens", "statuses", "results", "has_error", "error_message", "error_type",
    "error_traceback", "refund", "retry_in", "report", "progress", "status_message", "payload",
)  # fmt: skip


def finish_params(outcomes: Sequence[Outcome]) -> dict[str, list[Any]]:
    """The finish statement's columns, one array each, in unnest() order."""
    params: dict[str, list[Any]] = {name: [] for name in _FINISH_COLUMNS}
    for o in outcomes:
        error = o.error
        params["ids"].append(o.job_id)
        params["tokens"].append(o.token)
        params["statuses"].append(o.status.value)
        params["results"].append(o.result_json)
        # A completed job shows no error from its earlier attempts; a hand-back keeps it.
        params["has_error"].append(error is not None or o.status is Status.COMPLETED)
        params["error_message"].append(error.message if error else None)
        params["error_type"].append(error.type if error else None)
        params["error_traceback"].append(error.traceback if error else None)
        params["refund"].append(0 if o.spend_attempt else 1)
        params["retry_in"].append(o.retry_in or 0.0)
        params["report"].append(o.report_dirty)
        params["progress"].append(o.progress)
        params["status_message"].append(o.status_message)
        params["payload"].append(o.payload_json)
    return params


@dataclass(frozen=True, slots=True)
class Completer:
    """The store's own finish statement, run on the caller's connection: the job's completion
    (and everything the triggers write with it: attempt history, change feed, counters, its
    callback delivery) then commits or rolls back with the caller's transaction."""

    finish: str
    schema: str

    def on(self, connection: Any, outcome: Outcome) -> bool:
        """Write `outcome` on a psycopg Connection or Cursor; False: the lease did not match."""
        conn = connection.connection if isinstance(connection, psycopg.Cursor) else connection
        self._check(conn, psycopg.Connection, outcome)
        try:
            with conn.cursor(row_factory=tuple_row) as cur:
                cur.execute(self.finish, finish_params([outcome]))
                return bool(cur.fetchall())
        except psycopg.errors.UndefinedTable as exc:
            raise self._elsewhere() from exc

    async def on_async(self, connection: Any, outcome: Outcome) -> bool:
        """`on` for psycopg's AsyncConnection or AsyncCursor."""
        conn = connection.connection if isinstance(connection, psycopg.AsyncCursor) else connection
        self._check(conn, psycopg.AsyncConnection, outcome)
        try:
            async with conn.cursor(row_factory=tuple_row) as cur:
                await cur.execute(self.finish, finish_params([outcome]))
                return bool(await cur.fetchall())
        except psycopg.errors.UndefinedTable as exc:
            raise self._elsewhere() from exc

    @staticmethod
    def _check(conn: Any, kind: type[Any], o: Outcome) -> None:
        if not isinstance(conn, kind):
            call, other = ("complete_in", "complete_in_async")
            if kind is psycopg.Connection:
                hint = f"with an async connection use ctx.{other}"
            else:
                call, other = other, call
                hint = f"with a sync connection use ctx.{other}"
            raise ConfigurationError(
                f"ctx.{call} takes a psycopg {kind.__name__} or its cursor, not "
                f"{type(conn).__name__}; {hint}"
            )
        if o.ending is not Ending.COMPLETED:
            raise ValueError(f"only a completion is written in the caller's transaction, not {o}")
        if conn.autocommit and conn.info.transaction_status is TransactionStatus.IDLE:
            # The completion would commit on its own, before the effect: nothing gained.
            raise ConfigurationError(
                "ctx.complete_in needs an open transaction on the connection, and this one "
                "autocommits outside any: wrap the effect and the call in "
                "`with conn.transaction():` (or use a connection without autocommit)"
            )

    def _elsewhere(self) -> ConfigurationError:
        return ConfigurationError(
            f"ctx.complete_in found no underway tables in schema {self.schema!r} on this "
            "connection: it must reach the store's own database (the same server and database "
            "as the app's database_url)"
        )


class Completions:
    """The store's verbs of `TransactionalCompletion`, over its `Completer` (a class of their
    own so that the store stays one concept's size)."""

    _completer: Completer

    def complete_on(self, connection: Any, outcome: Outcome) -> bool:
        """Complete a running job on the caller's psycopg connection or cursor, inside its
        transaction: the completion lands only if that transaction commits."""
        return self._completer.on(connection, outcome)

    async def complete_on_async(self, connection: Any, outcome: Outcome) -> bool:
        """`complete_on` for psycopg's AsyncConnection or AsyncCursor."""
        return await self._completer.on_async(connection, outcome)
