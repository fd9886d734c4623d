"""The campaign metrics monitor: every 5 minutes from 30 s after each boot, an alert for each
of the five thresholds a campaign crosses, raised once and resolved when it clears."""

from __future__ import annotations

import time
from typing import Any

from outreach.config import DAY

from outreach import Outreach
from underway import testing

HEALTHY: dict[str, Any] = {
    "sent": 1000, "replies": 50, "positive_replies": 10, "bounces": 10,
    "last_reply_at": -3600.0, "last_positive_reply_at": -DAY,
}  # fmt: skip


def add_campaign(outreach: Outreach, cid: str, **overrides: Any) -> None:
    now, m = time.time(), {**HEALTHY, **overrides}
    with outreach.database.connect() as conn, conn.transaction():
        conn.execute(
            "INSERT INTO campaigns (id, name, status, started_at, sent, replies, positive_replies, "
            "bounces, last_reply_at, last_positive_reply_at) VALUES (?, ?, 'ACTIVE', ?, ?, ?, ?, "
            "?, ?, ?)",
            (cid, cid.title(), now - 30 * DAY, m["sent"], m["replies"], m["positive_replies"],
             m["bounces"], now + m["last_reply_at"], now + m["last_positive_reply_at"]),
        )  # fmt: skip


def open_alerts(outreach: Outreach) -> list[tuple[str, str]]:
    with outreach.database.connect() as conn:
        return [
            (str(c), str(k))
            for c, k in conn.rows(
                "SELECT campaign_id, kind FROM alerts WHERE resolved_at IS NULL "
                "ORDER BY campaign_id, kind"
            )
        ]


def monitor(outreach: Outreach) -> Any:
    job = outreach.monitor_campaigns.enqueue()
    testing.drain(outreach.app)
    done = outreach.app.get_job(job.id)
    assert done is not None and done.status.value == "completed", done
    return done.result


def test_each_of_the_five_thresholds_raises_its_alert(outreach: Outreach) -> None:
    add_campaign(outreach, "healthy")
    add_campaign(outreach, "quiet-readers", replies=5)  # 0.5% replies
    add_campaign(outreach, "bouncing", bounces=80)  # 8% bounces
    add_campaign(outreach, "no-positive", last_positive_reply_at=-8 * DAY)
    add_campaign(outreach, "no-reply", last_reply_at=-4 * DAY)
    add_campaign(outreach, "big", sent=10_000, replies=500, bounces=100)

    result = monitor(outreach)

    assert open_alerts(outreach) == [
        ("big", "sent_limit"),
        ("bouncing", "high_bounce_rate"),
        ("no-positive", "no_positive_reply"),
        ("no-reply", "no_reply"),
        ("quiet-readers", "low_reply_rate"),
    ]
    assert sorted(result["raised"]) == sorted(f"{c}:{k}" for c, k in open_alerts(outreach))
    with outreach.database.connect() as conn:
        [message] = conn.rows("SELECT message FROM alerts WHERE campaign_id = 'bouncing'")
    assert message == ("Bouncing: bounce rate 8.0% > 5.0%",)


def test_rates_wait_for_enough_emails(outreach: Outreach) -> None:
    add_campaign(outreach, "new", sent=20, replies=0, bounces=5)
    monitor(outreach)
    assert open_alerts(outreach) == []


def test_an_alert_is_raised_once_and_resolved_when_it_clears(outreach: Outreach) -> None:
    add_campaign(outreach, "bouncing", bounces=80)
    assert monitor(outreach) == {"raised": ["bouncing:high_bounce_rate"]}
    assert monitor(outreach) == {"raised": []}  # still open: not raised again
    with outreach.database.connect() as conn, conn.transaction():
        conn.execute("UPDATE campaigns SET bounces = 10 WHERE id = 'bouncing'")
    monitor(outreach)
    assert open_alerts(outreach) == []
    with outreach.database.connect() as conn:
        assert conn.rows("SELECT COUNT(*) FROM alerts WHERE resolved_at IS NOT NULL") == [(1,)]


def test_the_monitor_starts_30_seconds_after_each_boot_then_runs_every_5_minutes(
    outreach: Outreach,
) -> None:
    def monitors(jobs: list[Any]) -> int:
        testing.drain(outreach.app)  # a slot due while its run is unfinished is skipped
        return [job.task for job in jobs].count("outreach.monitor_campaigns")

    clock = testing.Clock()
    boot = testing.scheduler(outreach.app, clock=clock)
    assert monitors(boot.tick()) == 0
    clock.advance(29)
    assert monitors(boot.tick()) == 0
    clock.advance(1)
    assert monitors(boot.tick()) == 1
    clock.advance(299)
    assert monitors(boot.tick()) == 0
    clock.advance(1)
    assert monitors(boot.tick()) == 1

    # A restart (a new scheduler process) waits its own 30 seconds again.
    clock.advance(120)
    again = testing.scheduler(outreach.app, clock=clock)
    assert monitors(again.tick()) == 0
    clock.advance(30)
    assert monitors(again.tick()) == 1
