"""The Store protocol: one method per lifecycle verb. Everything above it is store-agnostic;
all SQL lives in the backends below it (sql.py holds what both SQL stores share)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from ..errors import ConfigurationError
from ..keys import ApiKey, NewKey, StoredKey
from ..model import (
    AttemptInfo,
    Change,
    Delivery,
    Job,
    MinuteStats,
    Page,
    QueueInfo,
    RunStats,
    Stats,
    Status,
    WorkerInfo,
)
from ..schedule import Overlap
from ..settings import Settings
from .messages import (
    ChangeFilter,
    Claimed,
    DeliveryCounts,
    DeliveryResult,
    DueDelivery,
    HeartbeatResult,
    HorizonHolder,
    JobFilter,
    Lease,
    Listener,
    NewJob,
    Outcome,
    QuotaDemand,
    Report,
    ScheduleState,
    TaskCounters,
    Topic,
    WorkerBeat,
)
from .schedule_protocol import StoredScheduleVerbs


class Store(StoredScheduleVerbs, Protocol):
    """Blocking calls, each one transaction. Safe to call from several threads at once;
    async callers offload them to a thread (see docs/decisions/0002-sync-store.md)."""

    url: str
    #: writes on several connections proceed in parallel (row locks, not one file lock), so a
    #: worker gives outcomes a store thread of their own
    concurrent_writes: bool

    def close_thread(self) -> None:
        """Release the calling thread's connection, if the store keeps one per thread; the
        worker calls it on each of its store threads as they end."""

    def migrate(self) -> int:
        """Apply pending schema migrations; returns the schema version now in place."""

    def close(self) -> None: ...

    def now(self) -> datetime:
        """The store's clock, which decides due times and lease expiry."""

    # --- producers ----------------------------------------------------------------------------
    def enqueue(self, jobs: Sequence[NewJob], quotas: Sequence[QuotaDemand] = ()) -> list[Job]:
        """Insert jobs as pending. A job whose unique key is held by an unfinished job is not
        inserted; that job is returned in its place. With `quotas` (tenants in sorted order),
        their tokens are first taken from the tenants' buckets in the same transaction; a
        bucket short of its demand raises QuotaExceeded and nothing is written. Without them
        no quota statement runs."""

    # --- workers ------------------------------------------------------------------------------
    def claim(
        self, worker_id: str, queues: Sequence[str] | None, limit: int, suspects: bool = False
    ) -> list[Claimed]:
        """Lease up to `limit` due pending jobs, highest priority then oldest first. Suspects,
        jobs a crash was rescued from (`rescues > 0`), are claimed only with `suspects=True`,
        which claims nothing else: a worker runs them alone (docs/decisions/0024)."""

    def suspect_due(self, queues: Sequence[str] | None) -> bool:
        """Whether a suspect of these queues is due (paused queues left out)."""

    def heartbeat(self, worker_id: str, leases: Sequence[Lease]) -> HeartbeatResult:
        """Extend the leases still held; say which are cancelled or lost."""

    def report(self, reports: Sequence[Report]) -> None:
        """Write progress/status/payload of running jobs whose lease is still held."""

    def finish(self, outcomes: Sequence[Outcome]) -> set[uuid.UUID]:
        """Record outcomes; returns the ids that landed (their lease token still matched)."""

    def rescue(self, max_rescues: int) -> list[Job]:
        """Take back running jobs whose lease expired: pending again, or failed when out of
        attempts or rescues."""

    def next_due(self, queues: Sequence[str] | None) -> float | None:
        """Seconds until the next pending job is due (<= 0: due now); None if there is none."""

    def wait_for_change(self, timeout: float) -> bool:
        """Block up to `timeout` seconds for a hint that new work may be there: True when
        something changed since this thread's last call (may be a false alarm), False on
        timeout. Only ever a hint; the claim decides."""

    def keep_listening(self) -> None:
        """Called while the worker is busy (each heartbeat): notice a lost listening
        connection now and listen again, not only when the worker is next idle. A hint
        read here makes the next `wait_for_change` return True at once."""

    # --- inspection and control ---------------------------------------------------------------
    def get(self, job_id: uuid.UUID) -> Job | None: ...

    def list_jobs(self, where: JobFilter, limit: int, cursor: str | None) -> Page: ...

    def cancel(self, job_id: uuid.UUID) -> Job:
        """Pending -> cancelled at once; running -> cancel requested (the worker ends it)."""

    def retry(self, job_id: uuid.UUID) -> Job:
        """Failed or cancelled -> pending again, attempts reset."""

    def stats(self, tenant: str | None = None) -> Stats:
        """Jobs by status, overall and per task, queue and tenant; with `tenant`, only that
        tenant's jobs are counted."""

    def delete_job(self, job_id: uuid.UUID) -> None:
        """Delete a finished job (JobNotFound if none has this id; InvalidTransition if it is
        pending or running)."""

    # --- queues and retention -----------------------------------------------------------------
    def set_queue_paused(self, name: str, paused: bool) -> None:
        """Paused queues are skipped by every worker's claims until resumed."""

    def set_queue_concurrency(self, name: str, concurrency: int | None) -> None:
        """Cap the jobs of a queue running at once across all workers (None: no cap)."""

    def queues(self) -> list[QueueInfo]:
        """Every queue that has jobs or controls."""

    def prune(self, older_than: float, statuses: Sequence[Status], batch: int = 1000) -> int:
        """Delete jobs in `statuses` that finished more than `older_than` seconds ago, in
        batches of `batch` rows per transaction; returns how many were deleted."""

    # --- schedules ----------------------------------------------------------------------------
    def register_schedule(
        self,
        name: str,
        task: str,
        rule: str,
        anchor: datetime,
        tenant: str | None = None,
        reanchor: bool = False,
        tenants: str | None = None,
    ) -> ScheduleState:
        """Create the schedule's row if missing (interval slots count from `anchor`), or update
        its task, rule text, tenant and `tenants` (JSON text: whom a schedule run once per
        tenant runs for); paused, last slot and counts are kept, and the anchor too unless
        `reanchor` (a scheduler booting with a `first_after_boot` rule)."""

    def schedule_states(self) -> list[ScheduleState]: ...

    def fire_schedule(
        self, name: str, slot: datetime, job: NewJob | None, overlap: Overlap
    ) -> Job | None:
        """Handle one slot, atomically and at most once across all schedulers: if the schedule
        is not paused and `slot` is later than its last slot, record it and insert `job`
        (None: just mark the slot handled). `overlap` says what to do while an earlier job of
        the schedule is unfinished. Returns the job inserted, if any."""

    def fire_slot(
        self, name: str, slot: datetime, jobs: Sequence[NewJob], overlap: Overlap
    ) -> list[Job]:
        """`fire_schedule` with any number of jobs for the slot (one per tenant), inserted in
        the transaction that records the slot: all of them once, or none (an empty list just
        marks the slot handled). Returns the jobs inserted."""

    def trigger_schedule(self, name: str, job: NewJob) -> Job:
        """Insert a job for the schedule now, outside its slots (ScheduleNotFound if the store
        has no schedule of that name)."""

    def set_schedule_paused(self, name: str, paused: bool) -> None:
        """Pause or resume a schedule (ScheduleNotFound if the store has none of that name)."""

    def run_stats(
        self, tenant: str | None = None
    ) -> tuple[dict[str, RunStats], dict[str, RunStats]]:
        """Run statistics per task and per schedule (of one tenant's jobs, with `tenant`)."""

    # --- metrics ------------------------------------------------------------------------------
    def counters(self) -> list[TaskCounters]:
        """What happened to jobs per task and queue, counted as it happened (triggers of
        migration 0006): never lower than at any earlier call, whatever was pruned."""

    def delivery_counts(self) -> DeliveryCounts:
        """Callback deliveries delivered, failed for good and attempted (counted as they
        happened), and pending now."""

    def stats_history(self, minutes: int, tenant: str | None = None) -> list[MinuteStats]:
        """Finishes per minute over the last `minutes` minutes of the store's clock (at most
        model.HISTORY_MINUTES), oldest first, the current minute last, every minute present
        (zeros too); with `tenant`, that tenant's jobs only."""

    def queue_depth(self) -> dict[str, dict[str, int]]:
        """Unfinished jobs per queue and status (pending, running); read without touching the
        finished ones."""

    # --- callbacks ----------------------------------------------------------------------------
    # A delivery row is written by the store itself (a trigger) in the transaction that moves
    # a job with a callback_url into a final state, and deleted with its job.

    def claim_deliveries(self, sender: str, limit: int, lease_seconds: float) -> list[DueDelivery]:
        """Lease up to `limit` due pending deliveries to `sender` for `lease_seconds`, oldest
        due first; a delivery leased to one sender is not due for another until the lease
        ends."""

    def record_delivery(self, result: DeliveryResult) -> bool:
        """Record one attempt and the status it leaves the delivery in; False (nothing
        written) when the claim's lease is no longer held."""

    def deliveries(self, job_id: uuid.UUID) -> list[Delivery]:
        """The job's deliveries, oldest first, each with its attempts."""

    # --- the change feed, attempts and workers ------------------------------------------------
    def listen(self, topic: Topic) -> Listener:
        """A listener for notices on `topic`, with a connection of its own; only ever a hint
        (on "cancels", a payload is a job id). Close it when done."""

    def change_head(self) -> str:
        """The cursor of the latest change every reader can see: where "from now on" starts."""

    def changes(self, after: str, where: ChangeFilter, limit: int) -> list[Change]:
        """Up to `limit` changes after cursor `after`, oldest first. A change appears here
        only once everything before it in the feed is visible, so a reader that resumes at
        the last cursor it got never skips one (InvalidArguments for a foreign cursor)."""

    def prune_changes(self, older_than: float, batch: int = 5000) -> int:
        """Drop changes older than `older_than` seconds (a job's go with it when it is
        deleted); returns how many."""

    def attempts(self, job_id: uuid.UUID) -> list[AttemptInfo]:
        """Every attempt of a job, oldest first."""

    def beat_worker(self, beat: WorkerBeat) -> None:
        """Say this worker is alive for `beat.lease` more seconds (registers it at first)."""

    def forget_worker(self, worker_id: str) -> None:
        """Remove a worker that stopped (and the rows of long-dead ones)."""

    def workers(self) -> list[WorkerInfo]:
        """Live workers, oldest first, each with the jobs it runs now."""

    def horizon_holders(self, older_than: float) -> list[HorizonHolder]:
        """What has kept the store from removing dead rows for more than `older_than`
        seconds, oldest first: on PostgreSQL a transaction holding back the xmin horizon (a
        forgotten `BEGIN`, a long report, `pg_dump`), a prepared transaction, or an idle
        replication slot. SQLite removes no dead rows behind a reader (a reader only holds
        the WAL's checkpoint back, which SQLite does not attribute): always []."""

    def cancel_requests(self, job_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these running jobs were asked to cancel."""

    # --- API keys -----------------------------------------------------------------------------
    def create_key(self, key: NewKey) -> ApiKey:
        """Store a new key (its secret only as a hash); created now, by the store's clock."""

    def find_key(self, key_id: str) -> StoredKey | None:
        """The key with this id and its secret's hash, revoked or not."""

    def list_keys(self) -> list[ApiKey]:
        """Every key, revoked ones too, oldest first."""

    def revoke_key(self, key_id: str) -> ApiKey:
        """Revoke a key for good (KeyNotFound if none has this id); revoking twice keeps the
        first time."""

    def touch_key(self, key_id: str) -> None:
        """Record that the key was used now."""


@runtime_checkable
class TransactionalEnqueue(Protocol):
    """A store that can insert jobs on the caller's own database connection, inside the
    caller's transaction: the jobs exist only if that transaction commits."""

    def enqueue_on(
        self, connection: Any, jobs: Sequence[NewJob], quotas: Sequence[QuotaDemand] = ()
    ) -> list[Job]:
        """Insert on the caller's sync connection (or cursor); `quotas` as in `enqueue`, their
        tokens taken on that connection, in the caller's transaction."""

    async def enqueue_on_async(
        self, connection: Any, jobs: Sequence[NewJob], quotas: Sequence[QuotaDemand] = ()
    ) -> list[Job]:
        """Insert on the caller's async connection (or cursor)."""


@runtime_checkable
class TransactionalCompletion(Protocol):
    """A store that can complete a running job on the caller's own database connection,
    inside the caller's transaction: the completion lands only if that transaction commits."""

    def complete_on(self, connection: Any, outcome: Outcome) -> bool:
        """Write `outcome` (a completion) on the caller's sync connection or cursor; False when
        the lease no longer matches (nothing written)."""

    async def complete_on_async(self, connection: Any, outcome: Outcome) -> bool:
        """`complete_on` for an async connection or cursor."""


#: "postgresql//host/db", "postgresql:/host/db", "postgres:host", "sqlite//file.db": a scheme
#: whose "://" is mistyped, which would otherwise read as a bare SQLite path.
_SCHEME_TYPO = re.compile(
    r"^(?:(?P<pg>postgres(?:ql)?)(?://|:/?(?!/))|(?P<sqlite>sqlite)//)", re.IGNORECASE
)


def open_store(settings: Settings) -> Store:
    """The store for `settings.database_url`: `sqlite:///path` (or a bare path) or
    `postgresql://...`."""
    url = settings.database_url
    typo = _SCHEME_TYPO.match(url)
    if typo is not None:
        scheme = (typo.group("pg") or typo.group("sqlite")).lower()
        raise ConfigurationError(
            f"{url!r} looks like a {scheme} URL with a typo after the scheme: write "
            f"{scheme}://{url[typo.end() :]} (a bare path names a SQLite file, and this one "
            "would have become a local file instead of the database you meant)"
        )
    if url.startswith("sqlite:") or "://" not in url:
        from .sqlite import SqliteStore

        return SqliteStore(url, settings)
    scheme = url.split("://", 1)[0]
    if scheme in ("postgresql", "postgres"):
        try:
            from .postgres import PostgresStore
        except ImportError as exc:
            raise ConfigurationError(
                f"the PostgreSQL store needs psycopg: pip install 'underway[postgres]' ({exc})"
            ) from None
        return PostgresStore(url, settings)
    raise ConfigurationError(
        f"unsupported database URL scheme {scheme!r} in {url!r}; use sqlite:///path/to/file.db or postgresql://user@host/db"
    )
