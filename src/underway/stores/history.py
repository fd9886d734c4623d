"""What both SQL stores share about a job's history and the fleet: the change feed that
`app.watch()` reads, attempt history, and the workers registry. The triggers of migration 0003
write the feed and the attempts in the transaction of each change
(docs/decisions/0011-change-feed.md)."""

from __future__ import annotations

import json
import uuid
from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import InvalidArguments
from ..model import AttemptInfo, Change, ChangeKind, JobError, WorkerInfo
from .messages import ChangeFilter, WorkerBeat
from .sql import C, Row, SqlStore, prune_in_batches, unchanged

_CHANGE_FILTERS = ("job_id", "task", "queue", "tenant")


class HistoryVerbs(SqlStore[C]):
    """The feed, attempt and worker verbs of the `Store` protocol, over a backend's
    connections and values."""

    @abstractmethod
    def _feed_position(self, cursor: str) -> dict[str, Any]:
        """A feed cursor as the `changes` statement takes it (ValueError on foreign text)."""

    @abstractmethod
    def _clock_skew(self, conn: C) -> float | None:
        """How many seconds this process's clock is ahead of the store's, or None where the
        store's clock is this process's own."""

    # --- the change feed ----------------------------------------------------------------------

    def change_head(self) -> str:
        with self._reading() as conn:
            cursor: str = self._run(conn, self._q["change_head"]).fetchall()[0][0]
        return cursor

    def changes(self, after: str, where: ChangeFilter, limit: int) -> list[Change]:
        try:
            params = self._feed_position(after)
        except ValueError:
            raise InvalidArguments(
                f"{after!r} is not a change cursor of this store; pass the cursor of a change "
                "it yielded, or none to start from now"
            ) from None
        names = tuple(n for n in _CHANGE_FILTERS if getattr(where, n) is not None)
        for name in names:
            value = getattr(where, name)
            params[name] = self.values.dump_id(value) if name == "job_id" else value
        params["limit"] = limit
        with self._reading() as conn:
            rows = self._records(self._run(conn, self._changes_sql(names), params))
        load_time: Callable[[Any], Any] = self.values.load_time or unchanged
        return [Change(r["cursor"], ChangeKind(r["kind"]), load_time(r["at"]), self._job(r))
                for r in rows]  # fmt: skip

    def _changes_sql(self, names: tuple[str, ...]) -> str:
        key = ("changes", *names)
        text = self._lists.get(key)
        if text is None:
            filters = "\n".join(self._q[f"change_{name.removesuffix('_id')}"] for name in names)
            text = self._lists[key] = self._render("changes", filters=filters)
        return text

    def prune_changes(self, older_than: float, batch: int = 5000) -> int:
        params = {"age": older_than, "batch": batch, **self._stamp()}
        pruned = 0

        def delete_batch() -> int:
            # A deleted row holds one change on SQLite, a statement's on PostgreSQL.
            nonlocal pruned
            with self._writing() as conn:
                rows = self._run(conn, self._q["prune_changes"], params).fetchall()
            held = [int(n) for (n,) in rows]
            pruned += sum(held)
            return len(held)

        prune_in_batches(delete_batch, batch)
        return pruned

    # --- attempts -----------------------------------------------------------------------------

    def attempts(self, job_id: uuid.UUID) -> list[AttemptInfo]:
        with self._reading() as conn:
            rows = self._all(conn, "attempts", {"id": self.values.dump_id(job_id)})
        return [self._attempt(r) for r in rows]

    def _attempt(self, r: Row) -> AttemptInfo:
        load_time: Callable[[Any], Any] = self.values.load_time or unchanged
        error = None
        if r["error_message"] is not None:
            error = JobError(r["error_message"], r["error_type"] or "")
        duration = r["duration"]
        return AttemptInfo(
            job_id=(self.values.load_id or unchanged)(r["job_id"]), number=r["number"],
            worker_id=r["worker_id"], started_at=load_time(r["started_at"]),
            ended_at=load_time(r["ended_at"]), outcome=r["outcome"], error=error,
            duration=None if duration is None else float(duration),
        )  # fmt: skip

    # --- workers ------------------------------------------------------------------------------

    def beat_worker(self, beat: WorkerBeat) -> None:
        queues = None if beat.queues is None else self.values.dump_list(list(beat.queues))
        params = {"id": beat.id, "host": beat.host, "pid": beat.pid, "queues": queues,
                  "concurrency": beat.concurrency, "lease": beat.lease,
                  **self._stamp()}  # fmt: skip
        with self._writing() as conn:
            params["clock_skew"] = self._clock_skew(conn)
            self._run(conn, self._q["beat_worker"], params)

    def forget_worker(self, worker_id: str) -> None:
        with self._writing() as conn:
            self._run(conn, self._q["forget_worker"], {"id": worker_id, **self._stamp()})
            self._run(conn, self._q["prune_workers"], self._stamp() or None)

    def workers(self) -> list[WorkerInfo]:
        load_time: Callable[[Any], Any] = self.values.load_time or unchanged
        with self._reading() as conn:
            rows = self._all(conn, "workers", self._stamp() or None)
        return [
            WorkerInfo(
                id=r["id"],
                host=r["host"],
                pid=r["pid"],
                queues=_queues(r["queues"]),
                concurrency=r["concurrency"],
                started_at=load_time(r["started_at"]),
                last_beat_at=load_time(r["last_beat_at"]),
                running=int(r["running"]),
                clock_skew=None if r["clock_skew"] is None else float(r["clock_skew"]),
            )
            for r in rows
        ]

    # --- prompt cancels -----------------------------------------------------------------------

    def cancel_requests(self, job_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        if not job_ids:
            return set()
        load_id = self.values.load_id or unchanged
        ids = [self.values.dump_id(i) for i in job_ids]
        with self._reading() as conn:
            rows = self._run(conn, self._q["cancel_requests"], {"ids": self.values.dump_list(ids)})
            return {load_id(row[0]) for row in rows.fetchall()}


def _queues(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(json.loads(value) if isinstance(value, str) else value)
