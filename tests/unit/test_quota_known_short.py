"""The producer's memory of refusals (quotas.KnownShort) against a model of the store's token
bucket: it refuses only what the store would refuse too, and it says when to come back."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from underway.errors import QuotaExceeded
from underway.quotas import KnownShort
from underway.stores.messages import QuotaDemand

RATE, BURST = 4.0, 6


class Bucket:
    """The store's bucket: refilled by elapsed time up to the burst, taken only when it holds
    enough, as take_tokens does."""

    def __init__(self) -> None:
        self.tokens, self.at = float(BURST), 0.0

    def take(self, count: int, now: float) -> float | None:
        """None when taken; else the tokens it held (the refusal)."""
        self.tokens = min(BURST, self.tokens + RATE * (now - self.at))
        self.at = now
        if self.tokens >= count:
            self.tokens -= count
            return None
        return self.tokens


# Each step: seconds since the last one, the jobs asked, and who asks: this process, another
# producer (which this one never hears of) taking from the same bucket, or this process in a
# call that fails before the store takes anything (a lost connection, a duplicate id), or
# this process on the caller's connection, whose transaction then commits or rolls back.
WHO = ("mine", "other", "mine, failing", "mine, committed", "mine, rolled back")
steps = st.lists(
    st.tuples(st.floats(0, 2), st.integers(1, BURST), st.sampled_from(WHO)),
    min_size=1, max_size=60,
)  # fmt: skip


@given(steps)
def test_it_refuses_only_what_the_store_would_refuse(plan: list[tuple[float, int, str]]) -> None:
    now = 0.0
    short, bucket = KnownShort(clock=lambda: now), Bucket()
    for wait, count, who in plan:
        now += wait
        demand = QuotaDemand("acme", count, RATE, BURST)
        if who == "other":
            bucket.take(count, now)
            continue
        in_transaction = who in ("mine, committed", "mine, rolled back")
        try:
            short.check([demand], take=not in_transaction)
        except QuotaExceeded as refusal:
            # the store, asked now, would refuse as well, and not sooner than it says
            held = min(BURST, bucket.tokens + RATE * (now - bucket.at))
            assert held < count
            assert refusal.retry_after is not None
            assert refusal.retry_after <= (count - held) / RATE + 1e-9
            continue
        if who == "mine, failing":
            short.failed([demand], ConnectionError("lost"))
            continue
        if in_transaction:  # the producer learns nothing from these
            if bucket.take(count, now) is None and who == "mine, rolled back":
                bucket.tokens += count  # the rollback gives them back
            continue
        tokens = bucket.take(count, now)
        if tokens is not None:
            short.failed([demand], demand.refused(tokens))


def test_a_flood_over_the_quota_is_refused_without_asking_the_store_again() -> None:
    now = 0.0
    short, bucket, asked = KnownShort(clock=lambda: now), Bucket(), 0
    demand = QuotaDemand("acme", 1, RATE, BURST)
    refused = 0
    for _ in range(1000):  # 1,000 enqueues in 1 s: the quota lets 6 + 4 through
        now += 0.001
        try:
            short.check([demand])
        except QuotaExceeded:
            refused += 1
            continue
        asked += 1
        tokens = bucket.take(1, now)
        if tokens is not None:
            refused += 1
            short.failed([demand], demand.refused(tokens))
    assert 1000 - refused == BURST + 3  # taken: the burst, then one per 1/RATE s (0.25, 0.5, 0.75)
    assert asked <= 2 * (BURST + 4)  # the store heard of the few that could pass, not 1,000
