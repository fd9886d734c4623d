"""The campaign metrics monitor: every 5 minutes, starting 30 s after each boot, it checks every
active campaign against the five thresholds and raises an alert for each one crossed (once: an
alert stays open, not repeated, until its condition clears and it is resolved)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import underway

from .config import DAY, Thresholds
from .database import Connection

TASK = "outreach.monitor_campaigns"

COLUMNS = ("id, name, started_at, sent, replies, positive_replies, bounces, last_reply_at, "
           "last_positive_reply_at")  # fmt: skip


@dataclass(frozen=True, slots=True)
class CampaignMetrics:
    """A campaign's counts, as the sync's third step last read them."""

    id: str
    name: str
    started_at: float
    sent: int
    replies: int
    positive_replies: int
    bounces: int
    last_reply_at: float | None
    last_positive_reply_at: float | None


@dataclass(frozen=True, slots=True)
class Alert:
    campaign_id: str
    kind: str
    message: str


def alerts_for(m: CampaignMetrics, t: Thresholds, now: float) -> list[Alert]:
    """The thresholds `m` crosses at `now`: pure, so each rule is easy to check."""
    found: dict[str, str] = {}
    if m.sent >= t.min_sample and m.replies / m.sent < t.min_reply_rate:
        found["low_reply_rate"] = f"reply rate {m.replies / m.sent:.1%} < {t.min_reply_rate:.1%}"
    if m.sent >= t.min_sample and m.bounces / m.sent > t.max_bounce_rate:
        found["high_bounce_rate"] = (
            f"bounce rate {m.bounces / m.sent:.1%} > {t.max_bounce_rate:.1%}"
        )
    quiet_positive = (now - (m.last_positive_reply_at or m.started_at)) / DAY
    if quiet_positive >= t.days_without_positive_reply:
        found["no_positive_reply"] = f"no positive reply for {quiet_positive:.0f} days"
    quiet = (now - (m.last_reply_at or m.started_at)) / DAY
    if quiet >= t.days_without_reply:
        found["no_reply"] = f"no reply for {quiet:.0f} days"
    if m.sent >= t.sent_limit:
        found["sent_limit"] = f"{m.sent} emails sent, limit {t.sent_limit}"
    return [Alert(m.id, kind, f"{m.name}: {text}") for kind, text in found.items()]


def check_campaign_metrics(conn: Connection, thresholds: Thresholds, now: float) -> list[Alert]:
    """Raise the alerts newly crossed and resolve those that cleared, in one transaction;
    returns the alerts raised now."""
    with conn.transaction():
        rows = conn.rows(f"SELECT {COLUMNS} FROM campaigns WHERE status = 'ACTIVE' ORDER BY id")
        crossed = [a for row in rows for a in alerts_for(CampaignMetrics(*row), thresholds, now)]
        open_now = {
            (campaign, kind)
            for campaign, kind in conn.rows(
                "SELECT campaign_id, kind FROM alerts WHERE resolved_at IS NULL"
            )
        }
        raised = [a for a in crossed if (a.campaign_id, a.kind) not in open_now]
        for alert in raised:
            conn.execute(
                "INSERT INTO alerts (campaign_id, kind, message, raised_at) VALUES (?, ?, ?, ?)",
                (alert.campaign_id, alert.kind, alert.message, now),
            )
        for campaign, kind in open_now - {(a.campaign_id, a.kind) for a in crossed}:
            conn.execute(
                "UPDATE alerts SET resolved_at = ? "
                "WHERE campaign_id = ? AND kind = ? AND resolved_at IS NULL",
                (now, campaign, kind),
            )
    return raised


def declare(
    app: underway.App, deps: dict[str, Any], thresholds: Thresholds
) -> underway.Task[..., Any]:
    @app.periodic(every=timedelta(minutes=5), first_after_boot=timedelta(seconds=30), name=TASK,
                  overlap="skip", deps=deps)  # fmt: skip
    def monitor_campaigns(ctx: underway.Context) -> dict[str, Any]:
        raised = check_campaign_metrics(ctx.deps.db, thresholds, time.time())
        for alert in raised:
            ctx.logger.warning("alert %s on %s: %s", alert.kind, alert.campaign_id, alert.message)
        return {"raised": [f"{a.campaign_id}:{a.kind}" for a in raised]}

    return monitor_campaigns
