"""How an attempt ends, decided by the pure functions of `underway.worker.outcomes`: no store,
no worker, no clock. A task's return value or error, or the reason the worker stopped it,
becomes an `Outcome`; `finished_snapshot` says what the job looks like once it is written."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import underway
from underway import Backoff, Cancel, JobError, PermanentError, Retry, Status
from underway.model import TRANSITIONS, Job
from underway.stores.messages import Claimed, Ending, Outcome
from underway.tasks import Task
from underway.worker import outcomes
from underway.worker.outcomes import NotRunnable, StopReason

NOW = datetime(2031, 5, 4, 12, 0, tzinfo=UTC)
TOKEN = "token-1"


class Tasks:
    """The tasks these tests decide outcomes for, declared on an app that never opens its
    store."""

    def __init__(self, app: underway.App) -> None:
        @app.task(
            name="tests.plain",
            retry=Backoff(base=1.0, factor=2.0, max=300.0, jitter=False),
            no_retry_on=(KeyError,),
        )
        def plain() -> None: ...

        @app.task(name="tests.timed", timeout=5, retry=Backoff(base=3.0, jitter=False))
        def timed() -> None: ...

        self.plain: Task[Any, Any] = plain
        self.timed: Task[Any, Any] = timed


@pytest.fixture(scope="module")
def tasks(tmp_path_factory: pytest.TempPathFactory) -> Tasks:
    where: Path = tmp_path_factory.mktemp("outcomes") / "x.db"
    app = underway.App("sqlite:///" + str(where))
    declared = Tasks(app)
    assert not where.exists(), "declaring tasks opened the store"
    return declared


def job(attempt: int = 1, max_attempts: int = 4, **changes: Any) -> Job:
    fields: dict[str, Any] = {
        "id": uuid.uuid4(),
        "task": "tests.plain",
        "args": {},
        "queue": "default",
        "priority": 0,
        "status": Status.RUNNING,
        "attempt": attempt,
        "max_attempts": max_attempts,
        "run_at": NOW - timedelta(minutes=1),
        "created_at": NOW - timedelta(minutes=2),
        "started_at": NOW - timedelta(seconds=30),
    }
    return Job(**{**fields, **changes})


def claimed(attempt: int = 1, max_attempts: int = 4, **changes: Any) -> Claimed:
    return Claimed(job(attempt, max_attempts, **changes), TOKEN)


def raised(exc: BaseException) -> BaseException:
    """`exc` with a traceback, as a task's error arrives."""
    try:
        raise exc
    except BaseException as caught:
        return caught


# --- completing ----------------------------------------------------------------------------------


def test_a_json_return_value_completes_the_job_with_that_result(tasks: Tasks) -> None:
    c = claimed()
    outcome = outcomes.completed(c, tasks.plain, {"sum": 3, "items": [1, "two", None]})
    assert outcome.ending is Ending.COMPLETED
    assert outcome.status is Status.COMPLETED
    assert (outcome.job_id, outcome.token) == (c.job.id, TOKEN)
    assert outcome.result_json == '{"sum":3,"items":[1,"two",null]}'
    assert outcome.error is None and outcome.spend_attempt


def test_a_return_value_that_is_not_json_makes_the_job_unrunnable(tasks: Tasks) -> None:
    c = claimed(attempt=1, max_attempts=4)
    with pytest.raises(NotRunnable, match=r"tests\.plain returned a value that is not JSON"):
        outcomes.completed(c, tasks.plain, {"when": datetime(2031, 1, 1)})
    try:
        outcomes.completed(c, tasks.plain, object())
    except NotRunnable as exc:
        failed = outcomes.failure(c, tasks.plain, exc)
    else:
        pytest.fail("an object() return value was accepted as JSON")
    assert failed.ending is Ending.FAILED, "retrying cannot make the return value JSON"
    assert failed.error is not None and failed.error.type == "NotRunnable"
    assert "not JSON" in failed.error.message


# --- failing and retrying --------------------------------------------------------------------


@pytest.mark.parametrize(("attempt", "expected_delay"), [(1, 1.0), (2, 2.0), (3, 4.0)])
def test_an_error_with_attempts_left_retries_after_the_backoff_delay(
    tasks: Tasks, attempt: int, expected_delay: float
) -> None:
    c = claimed(attempt=attempt, max_attempts=4)
    outcome = outcomes.failure(c, tasks.plain, raised(ValueError("boom")))
    assert outcome.ending is Ending.RETRY
    assert outcome.status is Status.PENDING
    assert outcome.retry_in == expected_delay
    assert outcome.spend_attempt, "a failed attempt counts"
    assert outcome.error is not None
    assert outcome.error.type == "ValueError"
    assert outcome.error.message == "ValueError: boom"
    assert "boom" in outcome.error.traceback and "Traceback" in outcome.error.traceback


def test_the_backoff_delay_is_capped_by_the_policy(tasks: Tasks) -> None:
    # Backoff(base=1, factor=2, max=300): attempt 10 would wait 512 s.
    outcome = outcomes.failure(claimed(10, 20), tasks.plain, raised(ValueError("boom")))
    assert outcome.retry_in == 300.0
    assert outcomes.retry_delay(tasks.plain, job(10, 20), ValueError()) == 300.0


def test_a_retry_delay_asked_for_by_the_task_wins_over_the_policy(tasks: Tasks) -> None:
    outcome = outcomes.failure(claimed(3, 4), tasks.plain, raised(Retry(delay=7)))
    assert outcome.ending is Ending.RETRY
    assert outcome.retry_in == 7.0
    assert outcomes.retry_delay(tasks.plain, job(3), Retry(delay=timedelta(minutes=2))) == 120
    # delay=0 is a delay too: at once, not the policy's 4 s.
    assert outcomes.retry_delay(tasks.plain, job(3), Retry(delay=0)) == 0
    # Without a delay, Retry uses the policy.
    assert outcomes.retry_delay(tasks.plain, job(3), Retry()) == 4.0


def test_a_negative_retry_delay_retries_at_once(tasks: Tasks) -> None:
    outcome = outcomes.failure(claimed(1, 4), tasks.plain, raised(Retry(delay=-5)))
    assert outcome.ending is Ending.RETRY
    assert outcome.retry_in == 0.0


def test_the_retry_reason_is_the_error_message(tasks: Tasks) -> None:
    outcome = outcomes.failure(claimed(1, 4), tasks.plain, raised(Retry(reason="rate limited")))
    assert outcome.error is not None
    assert outcome.error.type == "Retry"
    assert outcome.error.message == "Retry: rate limited"


@pytest.mark.parametrize("exc", [ValueError("boom"), Retry(delay=7)], ids=["an error", "a Retry"])
def test_the_last_attempt_fails_the_job_for_good(tasks: Tasks, exc: BaseException) -> None:
    outcome = outcomes.failure(claimed(attempt=4, max_attempts=4), tasks.plain, raised(exc))
    assert outcome.ending is Ending.FAILED
    assert outcome.status is Status.FAILED
    assert outcome.retry_in == 0.0
    assert outcome.error is not None and outcome.error.type == type(exc).__name__


class Unfixable(PermanentError):
    pass


@pytest.mark.parametrize(
    "exc",
    [
        PermanentError("bad input"),
        Unfixable("a subclass"),
        KeyError("in no_retry_on"),
        NotRunnable("arguments no longer fit"),
    ],
    ids=["PermanentError", "a PermanentError subclass", "no_retry_on", "NotRunnable"],
)
def test_an_error_retrying_cannot_fix_fails_at_once_with_attempts_left(
    tasks: Tasks, exc: BaseException
) -> None:
    assert not outcomes.retryable(tasks.plain, exc)
    outcome = outcomes.failure(claimed(attempt=1, max_attempts=4), tasks.plain, raised(exc))
    assert outcome.ending is Ending.FAILED
    assert outcome.error is not None and outcome.error.type == type(exc).__name__


def test_a_job_of_an_unknown_task_fails_at_once_with_attempts_left() -> None:
    assert not outcomes.retryable(None, ValueError())
    outcome = outcomes.failure(
        claimed(1, 4), None, raised(NotRunnable("task 'gone' is not registered"))
    )
    assert outcome.ending is Ending.FAILED
    assert outcome.error is not None
    assert (outcome.error.message, outcome.error.type) == (
        "task 'gone' is not registered",
        "NotRunnable",
    )


def test_an_error_outside_no_retry_on_is_retried(tasks: Tasks) -> None:
    assert outcomes.retryable(tasks.plain, LookupError("the parent of KeyError"))
    assert outcomes.retryable(tasks.timed, KeyError("timed has no no_retry_on"))


def test_a_cancelled_error_of_the_task_s_own_is_an_ordinary_failure(tasks: Tasks) -> None:
    outcome = outcomes.failure(claimed(1, 4), tasks.plain, raised(asyncio.CancelledError()))
    assert outcome.ending is Ending.RETRY
    assert outcome.error is not None and outcome.error.type == "CancelledError"


# --- cancelling and timing out -----------------------------------------------------------------


def test_cancel_raised_by_the_task_cancels_the_job_with_its_reason(tasks: Tasks) -> None:
    outcome = outcomes.failure(claimed(1, 4), tasks.plain, raised(Cancel("why")))
    assert outcome.ending is Ending.CANCELLED
    assert outcome.status is Status.CANCELLED
    assert outcome.error is not None
    assert (outcome.error.message, outcome.error.type) == ("why", "Cancel")
    assert outcome.spend_attempt


def test_cancel_on_the_last_attempt_still_cancels(tasks: Tasks) -> None:
    outcome = outcomes.failure(claimed(4, 4), tasks.plain, raised(Cancel()))
    assert outcome.ending is Ending.CANCELLED
    assert outcome.error is not None and outcome.error.message == "cancelled by the task"


def test_a_cancel_reason_holding_nul_is_stored_readably(tasks: Tasks) -> None:
    outcome = outcomes.failure(claimed(), tasks.plain, raised(Cancel("a\x00b")))
    assert outcome.error is not None and outcome.error.message == "a\\0b"


def test_a_timeout_of_a_task_with_a_timeout_is_reported_as_timeout(tasks: Tasks) -> None:
    outcome = outcomes.failure(claimed(1, 4), tasks.timed, raised(TimeoutError()))
    assert outcome.ending is Ending.RETRY, "a timed out attempt may be retried"
    assert outcome.retry_in == 3.0
    assert outcome.error is not None
    assert outcome.error.type == "Timeout"
    assert outcome.error.message == "timed out after 5 s (the task's timeout)"
    last = outcomes.failure(claimed(4, 4), tasks.timed, raised(TimeoutError()))
    assert last.ending is Ending.FAILED
    assert last.error is not None and last.error.type == "Timeout"


def test_a_timeout_error_of_a_task_without_a_timeout_is_its_own_error(tasks: Tasks) -> None:
    error = outcomes.describe_error(tasks.plain, raised(TimeoutError("the API timed out")))
    assert (error.type, error.message) == ("TimeoutError", "TimeoutError: the API timed out")
    assert outcomes.describe_error(None, TimeoutError()).type == "TimeoutError"


def test_describe_error_names_the_type_and_the_message() -> None:
    assert outcomes.describe_error(None, ValueError("x")).message == "ValueError: x"
    assert outcomes.describe_error(None, ValueError()).message == "ValueError"
    assert outcomes.describe_error(None, NotRunnable("as is")).message == "as is"
    assert outcomes.describe_error(None, RuntimeError("nul\x00here")).message == (
        "RuntimeError: nul\\0here"
    )


# --- stopped from outside ----------------------------------------------------------------------


def test_a_cancel_request_cancels_the_running_job() -> None:
    c = claimed(2, 4)
    outcome = outcomes.stopped(c, StopReason.CANCEL)
    assert outcome is not None
    assert outcome.ending is Ending.CANCELLED and outcome.status is Status.CANCELLED
    assert outcome.error is not None and outcome.error.type == "Cancelled"
    assert outcome.spend_attempt


def test_a_shutdown_hands_the_job_back_without_spending_the_attempt() -> None:
    outcome = outcomes.stopped(claimed(2, 4), StopReason.SHUTDOWN)
    assert outcome is not None
    assert outcome.ending is Ending.HANDED_BACK and outcome.status is Status.PENDING
    assert not outcome.spend_attempt
    assert outcome.retry_in == 0.0 and outcome.error is None


def test_a_lost_lease_writes_nothing() -> None:
    assert outcomes.stopped(claimed(), StopReason.LOST) is None


def test_a_stop_without_a_reason_hands_the_job_back() -> None:
    outcome = outcomes.stopped(claimed(), None)
    assert outcome is not None and outcome.ending is Ending.HANDED_BACK
    assert not outcome.spend_attempt


def test_a_timeout_stop_never_hands_the_job_back_for_free() -> None:
    """A hand-back does not spend the attempt: a task that always times out would then run
    forever. A timeout must count (fail or retry), or be refused as a reason `stopped` does
    not decide (timeouts are errors, decided by `failure`)."""
    try:
        outcome = outcomes.stopped(claimed(2, 4), StopReason.TIMEOUT)
    except ValueError:
        return  # refused: the caller decides timeouts through failure()
    assert outcome is not None, "a timed out job must not be left to its lease"
    assert outcome.spend_attempt, f"a timeout ended as {outcome.ending}, spending nothing"


def test_every_stop_reason_has_a_decided_ending() -> None:
    """A new StopReason must be given its ending here (and in `stopped`)."""
    decided = {
        StopReason.CANCEL: Ending.CANCELLED,
        StopReason.SHUTDOWN: Ending.HANDED_BACK,
        StopReason.LOST: None,
    }
    assert set(StopReason) - set(decided) == {StopReason.TIMEOUT}  # decided above
    for reason, ending in decided.items():
        outcome = outcomes.stopped(claimed(), reason)
        assert (outcome.ending if outcome else None) is ending, reason


# --- a refused outcome -------------------------------------------------------------------------


def test_an_outcome_the_store_refused_becomes_a_failure_that_says_why() -> None:
    original = Outcome.completed(uuid.uuid4(), TOKEN, '"x"')
    failed = outcomes.refused(original, "value too long " + "x" * 5000)
    assert failed.ending is Ending.FAILED
    assert (failed.job_id, failed.token) == (original.job_id, original.token)
    assert failed.error is not None and failed.error.type == "OutcomeNotStored"
    assert failed.error.message.startswith(
        "the store refused this job's outcome (completed): value too long "
    )
    assert len(failed.error.message) < 2100, "the reason is cut short"


# --- the snapshot published after the write --------------------------------------------------


def test_the_snapshot_of_a_completion_holds_the_result() -> None:
    before = job(2, 4, progress=0.3, status_message="working")
    outcome = Outcome.completed(before.id, TOKEN, '{"rows":12}')
    after = outcomes.finished_snapshot(before, outcome, NOW)
    assert after.status is Status.COMPLETED and after.finished
    assert after.result == {"rows": 12}
    assert after.attempt == 2
    assert after.completed_at == NOW
    assert after.started_at == before.started_at
    assert (after.progress, after.status_message) == (0.3, "working"), "no new reports"


def test_the_snapshot_of_a_retry_is_pending_until_the_delay_passed() -> None:
    before = job(1, 4)
    error = JobError("ValueError: boom", "ValueError")
    after = outcomes.finished_snapshot(before, Outcome.retry_later(before.id, TOKEN, error, 4), NOW)
    assert after.status is Status.PENDING and not after.finished
    assert after.run_at == NOW + timedelta(seconds=4)
    assert after.attempt == 1, "the failed attempt counts"
    assert after.error == error
    assert after.started_at is None and after.completed_at is None
    assert after.result is None


def test_the_snapshot_of_a_hand_back_refunds_the_attempt() -> None:
    before = job(3, 4)
    after = outcomes.finished_snapshot(before, Outcome.handed_back(before.id, TOKEN), NOW)
    assert after.status is Status.PENDING
    assert after.attempt == 2
    assert after.run_at == NOW, "due again at once"
    assert after.started_at is None and after.completed_at is None


@pytest.mark.parametrize(
    ("make", "status"),
    [(Outcome.failed, Status.FAILED), (Outcome.cancelled, Status.CANCELLED)],
    ids=["failed", "cancelled"],
)
def test_the_snapshot_of_a_final_failure_or_cancel_holds_its_error(
    make: Any, status: Status
) -> None:
    before = job(4, 4)
    error = JobError("why", "Why")
    after = outcomes.finished_snapshot(before, make(before.id, TOKEN, error), NOW)
    assert after.status is status and after.finished
    assert after.error == error
    assert after.attempt == 4
    assert after.completed_at == NOW
    assert after.result is None


def test_the_snapshot_carries_the_reports_that_landed_with_the_outcome() -> None:
    before = job(1, 4, progress=0.1, status_message="old", payload={"old": True})
    outcome = Outcome.completed(before.id, TOKEN, "null").with_reports(1.0, "done", '{"n":3}')
    after = outcomes.finished_snapshot(before, outcome, NOW)
    assert (after.progress, after.status_message, after.payload) == (1.0, "done", {"n": 3})
    # Reports without a new payload keep the one the job has.
    kept = Outcome.handed_back(before.id, TOKEN).with_reports(0.5, "half", None)
    after = outcomes.finished_snapshot(before, kept, NOW)
    assert (after.progress, after.status_message, after.payload) == (0.5, "half", {"old": True})


# --- Outcome refuses what cannot be --------------------------------------------------------------


JOB_ID = uuid.UUID(int=1)
AN_ERROR = JobError("boom", "ValueError")


@pytest.mark.parametrize(
    "fields",
    [
        {"ending": Ending.FAILED, "error": AN_ERROR, "result_json": "1"},
        {"ending": Ending.RETRY, "error": AN_ERROR, "result_json": "1"},
        {"ending": Ending.HANDED_BACK, "result_json": "1"},
        {"ending": Ending.CANCELLED, "error": AN_ERROR, "result_json": "1"},
        {"ending": Ending.FAILED},
        {"ending": Ending.RETRY, "retry_in": 3.0},
        {"ending": Ending.COMPLETED, "result_json": "1", "retry_in": 3.0},
        {"ending": Ending.FAILED, "error": AN_ERROR, "retry_in": 3.0},
        {"ending": Ending.HANDED_BACK, "retry_in": 3.0},
        {"ending": Ending.RETRY, "error": AN_ERROR, "retry_in": -1.0},
    ],
    ids=[
        "a result on a failure",
        "a result on a retry",
        "a result on a hand-back",
        "a result on a cancel",
        "a failure without an error",
        "a retry without an error",
        "retry_in on a completion",
        "retry_in on a failure",
        "retry_in on a hand-back",
        "a negative retry_in",
    ],
)
def test_an_outcome_refuses_an_illegal_combination(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Outcome(JOB_ID, TOKEN, **fields)


def test_the_named_constructors_make_legal_outcomes() -> None:
    made = [
        Outcome.completed(JOB_ID, TOKEN, "1"),
        Outcome.failed(JOB_ID, TOKEN, AN_ERROR),
        Outcome.retry_later(JOB_ID, TOKEN, AN_ERROR, 2.5),
        Outcome.handed_back(JOB_ID, TOKEN),
        Outcome.cancelled(JOB_ID, TOKEN, AN_ERROR),
    ]
    assert {o.ending for o in made} == set(Ending)
    assert all(o.status in TRANSITIONS[Status.RUNNING] for o in made)


# --- the rule, for any attempt and any error -----------------------------------------------


ERRORS: list[tuple[str, Any]] = [
    ("ValueError", lambda: ValueError("boom")),
    ("RuntimeError", lambda: RuntimeError()),
    ("TimeoutError", lambda: TimeoutError()),
    ("CancelledError", lambda: asyncio.CancelledError()),
    ("Retry", lambda: Retry()),
    ("Retry(delay)", lambda: Retry(delay=7)),
    ("PermanentError", lambda: PermanentError("no")),
    ("PermanentError subclass", lambda: Unfixable("no")),
    ("no_retry_on", lambda: KeyError("k")),
    ("NotRunnable", lambda: NotRunnable("cannot run")),
    ("Cancel", lambda: Cancel("why")),
]
NEVER_RETRIED = {"PermanentError", "PermanentError subclass", "no_retry_on", "NotRunnable"}


@given(
    limits=st.integers(1, 50).flatmap(lambda m: st.tuples(st.integers(1, m), st.just(m))),
    kind=st.sampled_from(ERRORS),
    known=st.booleans(),
    use_timed=st.booleans(),
)
def test_failure_retries_exactly_when_the_error_is_retryable_and_attempts_remain(
    tasks: Tasks,
    limits: tuple[int, int],
    kind: tuple[str, Any],
    known: bool,
    use_timed: bool,
) -> None:
    attempt, max_attempts = limits
    name, make = kind
    task = (tasks.timed if use_timed else tasks.plain) if known else None
    exc = raised(make())
    outcome = outcomes.failure(claimed(attempt, max_attempts), task, exc)

    # "no_retry_on" is a KeyError, which only tests.plain refuses to retry.
    retryable = task is not None and name not in NEVER_RETRIED
    if name == "no_retry_on" and task is tasks.timed:
        retryable = True
    if name == "Cancel":
        assert outcome.ending is Ending.CANCELLED
    elif retryable and attempt < max_attempts:
        assert outcome.ending is Ending.RETRY
        assert outcome.retry_in >= 0
    else:
        assert outcome.ending is Ending.FAILED
    assert outcome.status in TRANSITIONS[Status.RUNNING]
    assert outcome.spend_attempt
    assert outcome.error is not None
