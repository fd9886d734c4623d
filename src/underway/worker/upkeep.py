"""A worker's upkeep: heartbeats that keep its leases (and learn of cancels and lost leases)
and keep it listed among the live workers, prompt cancels, rescue of other workers' expired
leases, coalesced progress reports, and pruning of old jobs and changes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Callable, Mapping

from ..context import job_logger
from ..events import Events
from ..model import Status
from ..outages import quiet_store_errors
from ..settings import Settings
from ..stores import Store
from ..stores.messages import Lease, Report, WorkerBeat
from ..threads import StoreThreads
from ..waits import wait_event
from .attempt import Attempt
from .idle import WAIT_SLICE
from .keeper import LeaseKeeper
from .outcomes import StopReason, with_report
from .stalls import StallGuard
from .writer import OutcomeWriter

log = logging.getLogger("underway.worker")


class Upkeep:
    """The periodic duties of one worker, each a loop `Worker` runs beside its dispatch.

    `running` is the worker's live view of its attempts; `on_rescued` is called when jobs came
    back from expired leases (there may be work to claim)."""

    def __init__(
        self,
        beat: WorkerBeat,
        store: Store,
        threads: StoreThreads,
        settings: Settings,
        events: Events,
        running: Mapping[uuid.UUID, Attempt],
        writer: OutcomeWriter,
        on_rescued: Callable[[], None],
    ) -> None:
        self.worker_id = beat.id
        self.beat_info = beat
        self.store = store
        self.threads = threads
        self.settings = settings
        self.events = events
        self.running = running
        self.writer = writer
        self.on_rescued = on_rescued
        self.log = logging.LoggerAdapter(log, {"worker_id": beat.id})
        self._loop = asyncio.get_running_loop()
        self._reported = asyncio.Event()
        self._report_flagged = False  # the event is set or about to be: skip another wake
        self.stalls = StallGuard(settings.lease_seconds)
        self.keeper = LeaseKeeper(beat, store, settings.heartbeat_seconds, self.leases, running)
        self._written_at = float("-inf")  # the last write of progress (loop time)
        quiet_store_errors()  # these loops fail together, and again at each retry

    # --- the workers registry -----------------------------------------------------------------

    async def beat(self) -> None:
        """Keep this worker listed among the live ones for another lease."""
        try:
            await self.stalls.timed(
                lambda: self.threads.call(self.store.beat_worker, self.beat_info)
            )
        except Exception as exc:
            self.log.error("announcing the worker failed: %s", exc)

    async def keep_listening(self) -> None:
        """Listen again soon after the store's server came back, busy or not."""
        try:
            await self.threads.call(self.store.keep_listening)
        except Exception as exc:
            self.log.error("listening for new work failed: %s", exc)

    async def forget(self) -> None:
        """Take this worker off the list as it stops."""
        try:
            await self.threads.call(self.store.forget_worker, self.worker_id)
        except Exception as exc:
            self.log.error("removing the worker from the registry failed: %s", exc)

    # --- leases -------------------------------------------------------------------------------

    async def heartbeats(self) -> None:
        """Renew the leases, list the worker, rescue others' expired leases: each heartbeat,
        with the lease keeper standing in for the first two while the loop is blocked."""
        self.keeper.start()
        try:
            while True:
                await asyncio.sleep(self.settings.heartbeat_seconds)
                await self.heartbeat()
                await self.beat()
                await self.rescue()
                await self.keep_listening()
        finally:
            self.keeper.stop()

    def leases(self) -> list[Lease]:
        """The leases this worker holds: its running attempts' and its unwritten outcomes'."""
        held = [Lease(a.job.id, a.claimed.token) for a in list(self.running.values())]
        return held + self.writer.leases()

    async def heartbeat(self) -> None:
        leases = self.leases()
        if not leases:
            self.keeper.renewed()
            return
        try:
            result = await self.stalls.timed(
                lambda: self.threads.call(self.store.heartbeat, self.worker_id, leases)
            )
        except Exception as exc:
            self.log.error("heartbeat for %d leases failed: %s", len(leases), exc)
            return
        self.keeper.renewed()
        # The answer is about the leases we sent; a job may have been claimed again since
        # (a retry due at once), and the newer attempt must not be stopped for the old one.
        sent = {lease.job_id: lease.token for lease in leases}
        for job_ids, reason in (
            (result.cancel_requested, StopReason.CANCEL),
            (result.lost, StopReason.LOST),
        ):
            for job_id in job_ids:
                attempt = self.running.get(job_id)
                if attempt is not None and attempt.claimed.token == sent.get(job_id):
                    attempt.stop(reason)

    async def rescue(self) -> None:
        if not self.stalls.may_rescue():
            return  # the store stalled a moment ago: live holders renew their leases first
        try:
            rescued = await self.stalls.timed(
                lambda: self.threads.call(self.store.rescue, self.settings.max_rescues)
            )
        except Exception as exc:
            self.log.error("rescuing expired leases failed: %s", exc)
            return
        for job in rescued:
            job_logger(job, log).warning(
                "taken back from a worker that stopped heartbeating: now %s", job.status
            )
        self.events.publish_all(rescued)
        if rescued:
            self.on_rescued()

    # --- reports ------------------------------------------------------------------------------

    def report_arrived(self) -> None:
        """A task reported (from any thread): write it now, or at the end of its job's flush
        interval if that job's reports were just written."""
        if not self._report_flagged:
            self._report_flagged = True
            with contextlib.suppress(RuntimeError):  # the worker's loop closed
                self._loop.call_soon_threadsafe(self._reported.set)

    async def reports(self) -> None:
        # A report after a quiet spell goes out at once (watchers see it within milliseconds);
        # reports that follow within `progress_flush_seconds` of a write are coalesced into
        # one write at the end of that interval, every job's together. So a worker writes
        # progress at most once an interval, and each job at most once an interval, however
        # many jobs report or start meanwhile.
        held_until: float | None = None
        while True:
            wait = None if held_until is None else max(held_until - self._loop.time(), 0.0)
            await wait_event(self._reported, wait)
            self._reported.clear()
            self._report_flagged = False
            held_until = await self.flush_reports(self.settings.progress_flush_seconds)

    async def flush_reports(self, interval: float = 0.0) -> float | None:
        """Once the last write of progress is `interval` seconds old, write every running
        job's new reports in one call. Returns when the write held back is due, if one is."""
        now = self._loop.time()
        dirty: list[tuple[Attempt, int, Report]] = []
        for attempt in list(self.running.values()):
            unwritten = attempt.unwritten_report()
            if unwritten is not None:
                dirty.append((attempt, *unwritten))
        if not dirty:
            return None
        if self._written_at + interval > now:
            return self._written_at + interval
        try:
            await self.threads.call(self.store.report, [report for _, _, report in dirty])
        except Exception as exc:
            self.log.error("writing progress of %d jobs failed: %s", len(dirty), exc)
            return now + max(interval, 0.1)  # try again, not in a tight loop
        # From when the write returned: measured from its start, a slow write followed by a
        # quick one would land two writes less than an interval apart.
        self._written_at = self._loop.time()
        for attempt, version, report in dirty:
            attempt.written_version = max(attempt.written_version, version)
            # An attempt that ended while its report was written publishes its final state
            # with its outcome; a running snapshot now would arrive after that one.
            if self.running.get(attempt.job.id) is attempt and self.events.watched:
                self.events.publish(
                    with_report(
                        attempt.job, report.progress, report.status_message, report.payload_json
                    )
                )
        return None  # reports made meanwhile set the event: the loop comes back for them

    # --- prompt cancels ------------------------------------------------------------------------

    async def cancels(self) -> None:
        """Stop a running job as soon as someone asks to cancel it: PostgreSQL notifies the
        job's id; on SQLite the worker asks about its running jobs a few times a second. The
        heartbeat stays the backstop."""
        notices = self.threads.notices
        listener = await self.threads.on(notices, self.store.listen, "cancels")
        try:
            while True:
                notice = await self.threads.on(notices, listener.wait, WAIT_SLICE)
                if notice == [] or not self.running:
                    continue
                ids = list(self.running) if notice is None else _running_ids(notice, self.running)
                if ids:
                    requested = await self.threads.on(notices, self.store.cancel_requests, ids)
                    for job_id in requested:
                        attempt = self.running.get(job_id)
                        if attempt is not None:
                            attempt.stop(StopReason.CANCEL)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.log.error("listening for cancel requests failed (%s); heartbeats still "
                           "deliver them", exc)  # fmt: skip
        finally:
            notices.submit(listener.close)  # after the wait in flight: its thread owns it

    # --- retention ----------------------------------------------------------------------------

    async def pruning(self) -> None:
        interval = self.settings.prune_interval_seconds
        if interval <= 0:
            return
        # Spread workers that started together over the interval.
        await asyncio.sleep(random.uniform(interval / 10, interval))
        while True:
            await self.prune()
            await asyncio.sleep(interval)

    async def prune(self) -> None:
        s = self.settings
        try:
            # On a thread of its own: a big first prune must not hold up heartbeats.
            deleted = await self.threads.on(
                self.threads.upkeep,
                self.store.prune,
                s.retention_seconds,
                [Status.COMPLETED, Status.CANCELLED],
            )
            if s.failed_retention_seconds > 0:
                deleted += await self.threads.on(
                    self.threads.upkeep, self.store.prune, s.failed_retention_seconds,
                    [Status.FAILED],
                )  # fmt: skip
        except Exception as exc:
            self.log.error("pruning old jobs failed: %s", exc)
            return
        if deleted:
            self.log.info("pruned %d finished jobs", deleted)
        try:
            await self.threads.on(
                self.threads.upkeep, self.store.prune_changes, s.change_retention_seconds
            )
        except Exception as exc:
            self.log.error("pruning old changes failed: %s", exc)


def _running_ids(payloads: list[str], running: Mapping[uuid.UUID, Attempt]) -> list[uuid.UUID]:
    """The jobs named by cancel notices that this worker runs."""
    ids = []
    for payload in payloads:
        with contextlib.suppress(ValueError):
            job_id = uuid.UUID(payload)
            if job_id in running:
                ids.append(job_id)
    return ids
