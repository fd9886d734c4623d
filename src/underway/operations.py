"""App verbs for operators: API keys, deleting finished jobs, retrying or deleting the dead
letters (failed jobs) in bulk, and the history of finishes per minute. `App` inherits them;
they need only its store and events."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

from .errors import DuplicateKey, InvalidArguments, InvalidTransition, JobNotFound
from .events import Events
from .ids import as_job_id
from .keys import ApiKey, key_id_of, matches, new_key
from .model import HISTORY_MINUTES, Job, MinuteStats, Status
from .stores import Store
from .stores.messages import JobFilter
from .twins import twin

#: how stale a key's last_used_at may get before a request writes it again: one write per key
#: per minute, rather than one per request
TOUCH_EVERY = timedelta(seconds=60)
#: jobs read per page while walking the dead letters
_PAGE = 500


class Operations:
    """API keys and bulk job controls (mixed into `App`)."""

    events: Events

    @property
    def store(self) -> Store:
        raise NotImplementedError  # App's store

    # --- API keys ------------------------------------------------------------------------------

    def create_key(self, name: str | None = None, tenant: str | None = None) -> tuple[ApiKey, str]:
        """A new API key and its secret, which is shown this once: only its hash is stored.
        `tenant=None` makes an admin key (it sees every tenant)."""
        record, secret = new_key(name, tenant)
        return self.store.create_key(record), secret

    def list_keys(self) -> list[ApiKey]:
        """Every key, revoked ones too, oldest first (never their secrets)."""
        return self.store.list_keys()

    def revoke_key(self, key_id: str) -> ApiKey:
        """Revoke a key for good: it never authenticates again."""
        return self.store.revoke_key(key_id)

    def authenticate(self, secret: str) -> ApiKey | None:
        """The key this secret belongs to, or None (unknown, malformed or revoked)."""
        key_id = key_id_of(secret)
        stored = None if key_id is None else self.store.find_key(key_id)
        if stored is None or not matches(secret, stored):
            return None
        used = stored.key.last_used_at
        if used is None or datetime.now(UTC) - used > TOUCH_EVERY:
            self.store.touch_key(stored.key.id)
        return stored.key

    # --- history -------------------------------------------------------------------------------

    def stats_history(self, minutes: int = 60, tenant: str | None = None) -> list[MinuteStats]:
        """Jobs completed, failed and cancelled per minute over the last `minutes` minutes
        (1 to 1440; the store keeps a day), oldest first, one entry per minute with zeros
        included, the current minute last. With `tenant`, that tenant's jobs only."""
        if (
            isinstance(minutes, bool)
            or not isinstance(minutes, int)
            or not (1 <= minutes <= HISTORY_MINUTES)
        ):
            raise InvalidArguments(
                f"minutes must be a whole number from 1 to {HISTORY_MINUTES} (the store keeps "
                f"a day of finishes per minute), got {minutes!r}"
            )
        return self.store.stats_history(minutes, tenant)

    # --- deleting and bulk controls --------------------------------------------------------

    def delete_job(self, job_id: uuid.UUID | str) -> None:
        """Delete a finished job now (`prune` does it by age). Pending and running jobs are
        refused with InvalidTransition: cancel them first."""
        self.store.delete_job(as_job_id(job_id))

    def retry_failed(
        self,
        task: str | None = None,
        queue: str | None = None,
        tenant: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> int:
        """Run the matching dead letters (failed jobs) again; returns how many. A job whose
        unique key another unfinished job holds meanwhile stays failed."""
        where = JobFilter(Status.FAILED, None, task, queue, tenant, None, created_after,
                          created_before)  # fmt: skip
        count = self._each(where, self.store.retry)
        if count:
            self.events.wake_workers()
        return count

    def delete_failed(
        self,
        task: str | None = None,
        queue: str | None = None,
        tenant: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> int:
        """Delete the matching dead letters (failed jobs); returns how many."""
        where = JobFilter(Status.FAILED, None, task, queue, tenant, None, created_after,
                          created_before)  # fmt: skip
        return self._each(where, self.store.delete_job)

    def _each(self, where: JobFilter, verb: Callable[[uuid.UUID], object]) -> int:
        """Apply `verb` to every job matching `where`; a job that changed meanwhile (retried,
        deleted or holding a taken key) is skipped."""
        count = 0
        for job in self._walk(where):
            try:
                changed = verb(job.id)
            except (InvalidTransition, JobNotFound, DuplicateKey):
                continue
            if isinstance(changed, Job):
                self.events.publish(changed)
            count += 1
        return count

    def _walk(self, where: JobFilter) -> Iterator[Job]:
        # Paging runs by id, so changing the jobs already seen does not disturb it.
        cursor: str | None = None
        while True:
            page = self.store.list_jobs(where, _PAGE, cursor)
            yield from page.jobs
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    create_key_async = twin(create_key)
    list_keys_async = twin(list_keys)
    revoke_key_async = twin(revoke_key)
    authenticate_async = twin(authenticate)
    delete_job_async = twin(delete_job)
    retry_failed_async = twin(retry_failed)
    delete_failed_async = twin(delete_failed)
    stats_history_async = twin(stats_history)
