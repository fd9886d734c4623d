"""The five statuses and the one table of allowed transitions (model.py)."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from underway import Job, Status
from underway.model import FINISHED, TRANSITIONS, UNFINISHED, can_transition

P, R, C, F, X = (
    Status.PENDING,
    Status.RUNNING,
    Status.COMPLETED,
    Status.FAILED,
    Status.CANCELLED,
)

# Written out by hand from docs/decisions/0004-state-machine.md; one row per source status.
#                     to:  pending running completed failed cancelled
EXPECTED: dict[Status, tuple[int, int, int, int, int]] = {
    P: (0, 1, 0, 0, 1),  # claim; cancel before it ran
    R: (1, 0, 1, 1, 1),  # retry wait / hand-back / rescue; outcomes
    C: (0, 0, 0, 0, 0),  # terminal
    F: (1, 0, 0, 0, 0),  # manual retry out of the dead letters
    X: (1, 0, 0, 0, 0),  # manual retry
}
ORDER = (P, R, C, F, X)


def test_there_are_exactly_five_statuses_with_their_names() -> None:
    assert [s.value for s in Status] == ["pending", "running", "completed", "failed", "cancelled"]
    assert set(TRANSITIONS) == set(Status)


@pytest.mark.parametrize(
    ("source", "target"),
    list(itertools.product(ORDER, ORDER)),
    ids=lambda s: s.value,
)
def test_transition_table(source: Status, target: Status) -> None:
    allowed = bool(EXPECTED[source][ORDER.index(target)])
    assert can_transition(source, target) is allowed
    assert (target in TRANSITIONS[source]) is allowed


def test_no_status_transitions_to_itself() -> None:
    assert all(s not in TRANSITIONS[s] for s in Status)


def test_finished_statuses() -> None:
    assert {s for s in Status if s.finished} == {C, F, X}
    assert {C, F, X} == FINISHED
    assert {P, R} == UNFINISHED
    assert set(Status) == FINISHED | UNFINISHED and not FINISHED & UNFINISHED


@pytest.mark.parametrize("status", list(Status), ids=lambda s: s.value)
def test_job_finished_follows_its_status(status: Status) -> None:
    now = datetime.now(UTC)
    job = Job(uuid.uuid4(), "t", {}, "default", 0, status, 0, 1, now, now)
    assert job.finished is status.finished


def test_statuses_compare_equal_to_their_strings() -> None:
    assert Status("failed") is F
    assert F == "failed"
    with pytest.raises(ValueError):
        Status("dead")


def test_only_a_running_job_completes_or_fails() -> None:
    assert {s for s in Status if C in TRANSITIONS[s] or F in TRANSITIONS[s]} == {R}


def test_every_status_is_reachable_from_pending() -> None:
    seen, frontier = {P}, [P]
    while frontier:
        for target in TRANSITIONS[frontier.pop()]:
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    assert seen == set(Status)


class JobLifecycle(RuleBasedStateMachine):
    """Walk a job through random allowed moves, and try random disallowed ones."""

    def __init__(self) -> None:
        super().__init__()
        self.status = P
        self.completed = False

    @precondition(lambda self: bool(TRANSITIONS[self.status]))
    @rule(data=st.data())
    def move(self, data: st.DataObject) -> None:
        target = data.draw(st.sampled_from(sorted(TRANSITIONS[self.status])))
        assert can_transition(self.status, target)
        self.status = target
        self.completed = self.completed or target is C

    @rule(proposal=st.sampled_from(ORDER))
    def propose(self, proposal: Status) -> None:
        """Any move proposed at random happens only when the table allows it."""
        if can_transition(self.status, proposal):
            self.status = proposal
            self.completed = self.completed or proposal is C
        else:
            assert proposal not in TRANSITIONS[self.status]

    @invariant()
    def one_of_the_five(self) -> None:
        assert self.status in set(Status)

    @invariant()
    def completed_is_terminal(self) -> None:
        if self.completed:
            assert self.status is C
            assert TRANSITIONS[self.status] == frozenset()


TestJobLifecycle = JobLifecycle.TestCase
TestJobLifecycle.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)


@given(st.lists(st.integers(min_value=0, max_value=100), max_size=60))
def test_random_walks_stay_within_the_five_statuses(choices: list[int]) -> None:
    status, path = P, [P]
    for choice in choices:
        options = sorted(TRANSITIONS[status])
        if not options:
            break
        status = options[choice % len(options)]
        path.append(status)
    assert set(path) <= set(Status)
    if C in path:
        assert path.index(C) == len(path) - 1, "a walk went on after completed"
        assert path[path.index(C) - 1] is R
