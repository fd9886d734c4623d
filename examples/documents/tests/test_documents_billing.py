"""Jobs 3 to 6: hourly usage reports per tenant to the billing service (over HTTP, once per
tenant and hour, also with two schedulers), the daily retention cleanup, the hourly quota
check blocking and unblocking uploads, and the daily suspension after the grace period with a
notification. Runs on each store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from docflow_support import Running

from documents import UploadRefused
from underway import testing

KEEP = timedelta(days=30)
#: the first daily slot after the fake clocks' start (2031-05-04 12:00 UTC)
MIDNIGHT = datetime(2031, 5, 5, tzinfo=UTC)


def test_usage_is_reported_once_per_tenant_and_hour_even_with_two_schedulers(
    docflow: Running,
) -> None:
    platform = docflow.flow.platform
    platform.upload("acme", "a", "Invoice", KEEP)
    platform.upload("acme", "b", "Contract text", KEEP)
    platform.upload("globex", "c", "memo", KEEP)
    clock = testing.Clock()
    one = docflow.scheduler(clock)
    two = docflow.scheduler(clock, docflow.make())  # a second process of DocFlow
    for _ in range(2):
        one.tick()
        two.tick()
        docflow.settle()
        clock.advance(3600)
    periods = [(testing.DEFAULT_START + timedelta(hours=h)).isoformat() for h in range(2)]
    assert sorted((r["period"], r["tenant"], r["documents"], r["bytes"]) for r in
                  docflow.billing.reports) == [
        (period, tenant, count, size)
        for period in periods
        for tenant, count, size in (("acme", 2, 20), ("globex", 1, 4))
    ]  # fmt: skip
    jobs = docflow.app.list_jobs(task="docflow.report_usage").jobs
    assert sorted(job.tenant or "" for job in jobs) == ["acme", "acme", "globex", "globex"]


def test_the_daily_cleanup_expires_documents_past_retention_and_deletes_their_files(
    docflow: Running,
) -> None:
    platform = docflow.flow.platform
    old = platform.upload("acme", "old", "memo", timedelta(0))  # retention ends at once
    kept = platform.upload("acme", "kept", "memo", KEEP)
    other = platform.upload("globex", "other", "memo", timedelta(0))
    clock = testing.Clock(MIDNIGHT)
    docflow.scheduler(clock).tick()
    docflow.settle()
    assert platform.document(old)["status"] == "expired"
    assert not platform.file_of("acme", old).exists()
    assert (
        platform.document(kept)["status"] != "expired" and platform.file_of("acme", kept).exists()
    )
    assert platform.document(other)["status"] == "expired"  # globex's own cleanup run
    assert [(a["action"], a["subject"]) for a in platform.audit("acme")] == [("expired", old)]


def test_the_quota_check_blocks_uploads_at_the_quota_and_unblocks_them_below_it(
    docflow: Running,
) -> None:
    platform = docflow.flow.platform
    platform.add_tenant("initech", max_documents=2)
    first = platform.upload("initech", "1", "memo", timedelta(0))
    platform.upload("initech", "2", "memo", KEEP)
    clock = testing.Clock(MIDNIGHT - timedelta(hours=1))
    scheduler = docflow.scheduler(clock)
    scheduler.tick()  # 23:00: the hourly quota check
    docflow.settle()
    assert platform.tenant("initech")["uploads_blocked"] == 1
    with pytest.raises(UploadRefused, match="over its quota"):
        platform.upload("initech", "3", "memo", KEEP)
    assert platform.tenant("acme")["uploads_blocked"] == 0  # another tenant is not blocked

    clock.advance(3600)  # midnight: the cleanup expires the first document...
    scheduler.tick()
    docflow.settle()
    assert platform.document(first)["status"] == "expired"
    clock.advance(3600)  # ...and the next quota check unblocks
    scheduler.tick()
    docflow.settle()
    assert platform.tenant("initech")["uploads_blocked"] == 0
    platform.upload("initech", "3", "memo", KEEP)
    actions = [a["action"] for a in platform.audit("initech")]
    assert actions[0] == "uploads blocked" and actions[-1] == "uploads unblocked"


def test_a_tenant_past_its_grace_period_turns_read_only_and_is_notified(
    docflow: Running,
) -> None:
    platform = docflow.flow.platform
    platform.start_grace_period("globex", until=datetime.now(UTC) - timedelta(seconds=1))
    platform.start_grace_period("acme", until=datetime.now(UTC) + timedelta(days=7))
    clock = testing.Clock(MIDNIGHT)
    scheduler = docflow.scheduler(clock)
    scheduler.tick()
    docflow.settle()
    assert platform.tenant("globex")["billing_status"] == "read_only"
    assert platform.tenant("acme")["billing_status"] == "grace"
    assert [(n["tenant"], n["kind"]) for n in docflow.notifications.sent] == [
        ("globex", "suspended")
    ]
    (notice,) = docflow.app.list_jobs(task="docflow.notify_suspension").jobs
    assert (notice.tenant, notice.status, notice.key) == ("globex", "completed", "suspended:globex")
    with pytest.raises(UploadRefused, match="read-only"):
        platform.upload("globex", "late", "memo", KEEP)
    platform.upload("acme", "fine", "memo", KEEP)  # still in its grace period

    clock.advance(86400)  # the next day: nobody is suspended twice
    scheduler.tick()
    docflow.settle()
    assert len(docflow.notifications.sent) == 1
