"""Claiming on PostgreSQL: each queue with a concurrency limit under its row lock, then all
the others in one statement (FOR UPDATE SKIP LOCKED), tenants taking turns (fair.py).
Suspects, the jobs a crash was rescued from, are claimed only when a worker asks for them, and
then alone (worker/suspects.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import psycopg

from ..fair import FIRST, GROUPS_PER_CLAIM, Turns
from ..messages import Claimed
from .inserts import one, records

Tx = Callable[..., AbstractContextManager[psycopg.Connection[Any]]]
QueueShape = Callable[[Sequence[str] | None], tuple[str, dict[str, Any]]]


class Claims:
    """The claim statements of one store, rendered once, and the claim itself. `tx` is the
    store's connection context (`atomic=True` for one transaction)."""

    def __init__(
        self, render: Callable[..., str], q: Mapping[str, str], tx: Tx, shape: QueueShape,
        to_job: Callable[[Any], Any],
    ) -> None:  # fmt: skip
        self._q, self._tx, self._shape, self._job = q, tx, shape, to_job
        filters = {"all": "", "one": q["filter_queue"], "many": q["filter_queues"]}
        # Suspects are claimed one at a time, so by the plain claim; all else takes turns.
        self._sql: dict[tuple[str, bool], str] = {}
        for shape_name, text in filters.items():
            self._sql[shape_name, True] = render(
                "claim", queues=text, unlimited=q["filter_unlimited"], suspects=q["only_suspects"]
            )
            self._sql[shape_name, False] = render(
                "claim_fair", steps=text, unlimited=q["filter_unlimited"],
                suspects=q["not_suspects"],
            )  # fmt: skip
        self._sql["limited", True] = render(
            "claim", queues=q["filter_queue"], unlimited="", suspects=q["only_suspects"]
        )
        self._sql["limited", False] = render(
            "claim_fair", steps=q["filter_queue"], unlimited="", suspects=q["not_suspects"]
        )
        self._turns = Turns()
        #: the look for a due suspect, by queue shape
        self.due_sql = {name: render("suspect_due", queues=text) for name, text in filters.items()}
        self._limited: list[str] = []
        self._limited_read_at = float("-inf")

    def claim(
        self, worker_id: str, queues: Sequence[str] | None, limit: int, lease: float,
        suspects: bool,
    ) -> list[Claimed]:  # fmt: skip
        if limit <= 0:
            return []
        claimed: list[Claimed] = []
        base = {"lease": lease, "worker_id": worker_id}
        # Limited queues first: they are capped, and would starve behind busy free ones.
        for name in self._limited_queues():
            if (queues and name not in queues) or len(claimed) >= limit:
                continue
            claimed += self._claim_limited(name, limit - len(claimed), base, suspects)
        if len(claimed) < limit:
            shape, params = self._shape(queues)
            params.update(base, limit=limit - len(claimed))
            with self._tx() as conn:
                claimed += self._claim_in(conn, self._sql[shape, suspects], params, suspects)
        claimed.sort(key=lambda c: (-c.job.priority, c.job.run_at, c.job.id))
        return claimed

    def statement(self, shape: str, suspects: bool = False) -> str:
        """The claim statement of a queue shape ("all", "one", "many" or "limited")."""
        return self._sql[shape, suspects]

    def suspect_due(self, queues: Sequence[str] | None) -> bool:
        shape, params = self._shape(queues)
        with self._tx() as conn:
            return conn.execute(self.due_sql[shape], params).fetchone() is not None

    def forget_limited(self) -> None:
        """The queues' limits changed: read them again at the next claim."""
        self._limited_read_at = float("-inf")

    def _claim_limited(
        self, queue: str, most: int, base: dict[str, Any], suspects: bool
    ) -> list[Claimed]:
        """Claim up to `most` jobs of one limited queue, within its limit."""
        with self._tx(atomic=True) as conn:
            row = conn.execute(self._q["lock_limited_queue"], {"queue": queue}).fetchone()
            if row is None:
                return []  # paused, or no longer limited
            running = one(conn.execute(self._q["count_running"], {"queue": queue}))[0]
            room = min(most, row[0] - running)
            if room <= 0:
                return []
            params = {**base, "queue": queue, "limit": room}
            return self._claim_in(conn, self._sql["limited", suspects], params, suspects)

    def _limited_queues(self) -> list[str]:
        """Names of limited queues, re-read at most every second. Staleness is safe: the main
        claim excludes limited queues by reading the table itself."""
        now = time.monotonic()
        if now - self._limited_read_at > 1.0:
            with self._tx() as conn:
                self._limited = [row[0] for row in conn.execute(self._q["limited_queues"])]
            self._limited_read_at = now
        return self._limited

    def _claim_in(
        self, conn: psycopg.Connection[Any], sql: str, params: dict[str, Any], suspects: bool
    ) -> list[Claimed]:
        """One claim statement; a fair one starts after this worker's last turn and, when the
        groups after it had too little, goes round again from the first."""
        if suspects:
            return self._claimed(conn.execute(sql, params))
        after = self._turns.after
        limit: int = params["limit"]
        claimed = self._claimed(conn.execute(sql, {**params, **_cursor(after)}))
        if len(claimed) < limit and after != FIRST:
            rest = {**params, **_cursor(FIRST), "limit": limit - len(claimed)}
            claimed += self._claimed(conn.execute(sql, rest))
        self._turns.took([c.job for c in claimed])
        return claimed

    def _claimed(self, cur: psycopg.Cursor[Any]) -> list[Claimed]:
        return [Claimed(self._job(r), r["lease_token"]) for r in records(cur)]


def _cursor(after: tuple[str, str]) -> dict[str, Any]:
    return {"after_queue": after[0], "after_tenant": after[1], "groups": GROUPS_PER_CLAIM}
