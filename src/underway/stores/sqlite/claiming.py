"""Claiming on SQLite, inside the caller's write transaction (the file's one writer): each
queue with a concurrency limit within its limit, then the others, tenants taking turns
(stores/fair.py). Suspects, the jobs a crash was rescued from, are claimed by the plain
statements, one at a time (worker/suspects.py)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from ...model import Job
from ..fair import FIRST, GROUPS_PER_CLAIM, Offer, Turns, pick_order
from ..messages import Claimed
from ..sqlfile import render


class Claims:
    """The claim of one store. `sql` holds its statements; `to_job` reads a job row."""

    def __init__(
        self, sql: Mapping[str, str], plain: Mapping[str, str],
        to_job: Callable[[sqlite3.Row], Job],
    ) -> None:  # fmt: skip
        self._q = sql
        self._plain = plain  # the suspects' claims, by queue shape, and of one limited queue
        self._candidates = render(sql["fair_candidates"], suspects=sql["not_suspects"])
        self._claim_picked = render(sql["claim_picked"], picked=sql["picked_ids"])
        one_group = render(sql["fair_group_ids"], suspects=sql["not_suspects"])
        self._claim_group = render(sql["claim_picked"], picked=one_group)
        self._job = to_job
        self._turns = Turns()

    def claim(
        self, conn: sqlite3.Connection, queues: Sequence[str] | None, params: dict[str, Any],
        suspects: bool,
    ) -> list[Claimed]:  # fmt: skip
        """Up to params["limit"] jobs: each limited queue first (they are capped, and would
        starve behind busy free ones), then the rest."""
        limit: int = params["limit"]
        claimed: list[Claimed] = []
        for name, concurrency in conn.execute(self._q["limited_queues"]).fetchall():
            if (queues and name not in queues) or len(claimed) >= limit:
                continue
            most = limit - len(claimed)
            if suspects:
                limited = {**params, "queue": name, "concurrency": concurrency, "limit": most}
                claimed += self._rows(conn.execute(self._plain["limited"], limited))
                continue
            running = conn.execute(self._q["count_running"], {"queue": name}).fetchone()[0]
            room = min(most, concurrency - running)
            if room > 0:
                claimed += self._fair(conn, {**params, "limit": room}, [name], ())
        if len(claimed) < limit:
            rest = {**params, "limit": limit - len(claimed)}
            if suspects:
                shape = "many" if queues else "all"
                claimed += self._rows(conn.execute(self._plain[shape], rest))
            else:
                skipped = {row[0] for row in conn.execute(self._q["skipped_queues"])}
                claimed += self._fair(conn, rest, queues, skipped)
        return claimed

    def _fair(
        self, conn: sqlite3.Connection, params: dict[str, Any], queues: Sequence[str] | None,
        skipped: Collection[str],
    ) -> list[Claimed]:  # fmt: skip
        """Take turns among the groups after this worker's cursor; when they had too little,
        go round again from the first."""
        after, limit = self._turns.after, params["limit"]
        claimed, last = self._take(conn, params, self._groups(conn, after, queues, skipped))
        if len(claimed) < limit and after != FIRST:
            rest = {**params, "limit": limit - len(claimed)}
            more, last_again = self._take(conn, rest, self._groups(conn, FIRST, queues, skipped))
            claimed, last = claimed + more, last_again or last
        self._turns.at(last)
        return claimed

    def _groups(
        self, conn: sqlite3.Connection, after: tuple[str, str], queues: Sequence[str] | None,
        skipped: Collection[str],
    ) -> list[tuple[str, str]]:  # fmt: skip
        """Up to GROUPS_PER_CLAIM groups with pending jobs after `after`, in the queues asked
        for. A probe that lands in a queue not asked for jumps to the next one asked for."""
        wanted = sorted(set(queues)) if queues else None
        found: list[tuple[str, str]] = []
        row = self._probe(conn, "fair_next_tenant", *after) or self._probe(
            conn, "fair_queue_after", after[0]
        )
        while row is not None and len(found) < GROUPS_PER_CLAIM:
            queue, tenant = row
            if wanted is not None and queue not in wanted:
                later = [name for name in wanted if name > queue]
                if not later:
                    break
                row = self._probe(conn, "fair_queue_from", later[0])
                continue
            if queue not in skipped:
                found.append((queue, tenant))
            row = self._probe(conn, "fair_next_tenant", queue, tenant) or self._probe(
                conn, "fair_queue_after", queue
            )
        return found

    def _probe(
        self, conn: sqlite3.Connection, name: str, queue: str, tenant: str = ""
    ) -> tuple[str, str] | None:
        row = conn.execute(self._q[name], {"queue": queue, "tenant": tenant}).fetchone()
        return None if row is None else (row[0], row[1])

    def _take(
        self, conn: sqlite3.Connection, params: dict[str, Any], groups: list[tuple[str, str]]
    ) -> tuple[list[Claimed], tuple[str, str] | None]:
        """Offer each group's first jobs, then claim them turn by turn up to the limit; and
        the group of the last one taken (None: none was)."""
        limit: int = params["limit"]
        if len(groups) == 1:  # no one to take turns with: its jobs in claim order, at once
            queue, tenant = groups[0]
            claimed = self._rows(
                conn.execute(self._claim_group, {**params, "queue": queue, "tenant": tenant})
            )
            return claimed, (groups[0] if claimed else None)
        offered: list[Offer] = []
        for queue, tenant in groups:
            rows = conn.execute(
                self._candidates,
                {"queue": queue, "tenant": tenant, "now": params["now"], "limit": limit},
            )
            offered += [_offer(row) for row in rows]
        if not offered:
            return [], None
        picked = pick_order(offered)[:limit]
        ids = json.dumps([offer.id for offer in picked])
        claimed = self._rows(conn.execute(self._claim_picked, {**params, "ids": ids}))
        return claimed, (picked[-1].group if claimed else None)

    def _rows(self, cursor: sqlite3.Cursor) -> list[Claimed]:
        return [Claimed(self._job(row), row["lease_token"]) for row in cursor.fetchall()]


def _offer(row: sqlite3.Row) -> Offer:
    return Offer(row["id"], row["queue"], row["tenant"] or "", row["priority"], row["run_at"])
