"""Every error underway raises, under one root, and the signals a task may raise."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta


class UnderwayError(Exception):
    """Root of every error underway raises on purpose."""


class ConfigurationError(UnderwayError, ValueError):
    """A setting, URL, option or app path is wrong; the message says which and how to fix it.
    (A ValueError too, so code written against plain Python errors still catches it.)"""


class StoreError(UnderwayError):
    """The store cannot be used: unreachable, corrupt, foreign or from a newer version."""


class InvalidArguments(UnderwayError, ValueError):
    """Arguments given to `enqueue` or another call do not fit (wrong names, not JSON, out of
    range). A ValueError too, so code written against plain Python errors still catches it."""


class ArgumentsTooLarge(InvalidArguments):
    """A job's arguments are more JSON than the setting max_args_bytes allows (the HTTP API
    answers 413): store large data elsewhere and pass a reference."""


class UnknownTask(UnderwayError):
    """A task name that is not registered in this app."""


class JobNotFound(UnderwayError):
    """No job has the given id."""


class ScheduleNotFound(UnknownTask, JobNotFound):
    """No schedule has the given name, in this app or in the store. (Caught as UnknownTask or
    JobNotFound too, which older code used for it.)"""


class ScheduleDeclaredInCode(ConfigurationError):
    """A run-time add, update or removal of a schedule whose name code declares: the code
    owns it (docs/decisions/0018-stored-schedules.md)."""

    @classmethod
    def named(cls, name: str) -> ScheduleDeclaredInCode:
        return cls(
            f"schedule {name!r} is declared in code: change or delete it there; at run time it "
            "can be paused, resumed, restarted and triggered. A schedule put at run time "
            "(app.schedule(..., stored=True)) needs a name no code declares."
        )


class KeyNotFound(UnderwayError):
    """No API key has the given id."""


class InvalidTransition(UnderwayError):
    """The job's status does not allow the requested change (e.g. retrying a completed job)."""


class DuplicateKey(UnderwayError):
    """Another unfinished job already holds the unique key."""


class JobExists(UnderwayError):
    """A caller-chosen job id (`task.options(id=...)`) that a job already has."""

    @classmethod
    def naming(cls, ids: Iterable[object]) -> JobExists:
        listed = sorted(str(i) for i in ids)
        which = f"a job with id {listed[0]} already exists" if len(listed) == 1 else (
            f"jobs with ids {', '.join(listed)} already exist"
        )  # fmt: skip
        return cls(f"{which}: pick another id, or fetch the existing job by its id")


class QuotaExceeded(UnderwayError):
    """An enqueue that would take a tenant over its enqueue quota (`TenantQuota`): nothing of
    the call was written. `retry_after` is how many seconds until enough tokens are back, or
    None when the batch is bigger than the quota's burst and can never pass as one call."""

    def __init__(
        self, message: str, tenant: str, retry_after: float | None, tokens: float | None = None
    ) -> None:
        super().__init__(message)
        self.tenant = tenant
        self.retry_after = retry_after
        #: the tokens the tenant's bucket held when it refused (None: not read)
        self.tokens = tokens

    @classmethod
    def refused(
        cls, tenant: str, count: int, per_second: float, burst: int, tokens: float
    ) -> QuotaExceeded:
        """The refusal of `count` jobs for `tenant` while its bucket holds `tokens`.

        >>> QuotaExceeded.refused("acme", 1, 2.0, 5, 0.5).retry_after
        0.25
        """
        quota = f"{per_second:g} jobs/s, burst {burst}"
        if count > burst:
            return cls(
                f"a batch of {count} jobs for tenant {tenant!r} can never pass its enqueue "
                f"quota ({quota}): split the batch into at most {burst} jobs",
                tenant,
                None,
            )
        wait = max(count - tokens, 0.0) / per_second
        return cls(
            f"tenant {tenant!r} is over its enqueue quota ({quota}): {count} job"
            f"{'s' if count != 1 else ''} asked, {max(tokens, 0.0):.2f} left; retry in "
            f"{wait:.2f} s (or raise the quota: App(tenant_quotas=...) or "
            "UNDERWAY_TENANT_ENQUEUE_RATE)",
            tenant,
            wait,
            tokens,
        )


class CallbackRefused(UnderwayError):
    """A callback URL that underway will not send to: its address is loopback, private,
    link-local, metadata or otherwise not public, and no `callback_allow` entry permits it.
    Recorded on the delivery, which then fails for good."""


class LeaseLost(UnderwayError):
    """`ctx.complete_in` found the job no longer running under this attempt's lease (it
    expired and another worker took the job, or the job is completed already). Let it
    propagate: the caller's transaction rolls back, so its effect does not happen."""


class JobTimeout(UnderwayError):
    """Raised by `App.wait` when the job did not finish in time."""


class WaitTimeout(UnderwayError, AssertionError):
    """Raised by `underway.testing.wait_for` when its condition did not hold in time; an
    AssertionError, so a test runner reports it as the test's failure."""


class TaskError(Exception):
    """Base for the control signals below; they steer the job, they are not failures of underway."""


class Retry(TaskError):
    """Raise inside a task to run it again later, counting the attempt.

    >>> raise underway.Retry(delay=30, reason="rate limited")
    """

    def __init__(self, delay: float | timedelta | None = None, reason: str = "retry requested"):
        super().__init__(reason)
        self.delay = delay.total_seconds() if isinstance(delay, timedelta) else delay
        self.reason = reason


class Cancel(TaskError):
    """Raise inside a task to end the job as `cancelled` instead of failed."""

    def __init__(self, reason: str = "cancelled by the task"):
        super().__init__(reason)
        self.reason = reason


class PermanentError(Exception):
    """Subclass (or raise) this for errors that retrying cannot fix: the job fails at once."""
