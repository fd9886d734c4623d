"""Smartlead (email accounts, campaigns, their counts, templates and leads) and RevReply (the
AI classification of a lead's conversation), with a small data set of their own."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .server import Request, Response, Server


def _accounts() -> list[dict[str, Any]]:
    return [
        {"id": "acc-1", "from_email": "ann@outreach.example",
         "warmup_details": {"warmup_reputation": 98}, "daily_sent_count": 40},
        {"id": "acc-2", "from_email": "bob@outreach.example",
         "warmup_details": {"warmup_reputation": 91}, "daily_sent_count": 25},
    ]  # fmt: skip


def _campaigns() -> list[dict[str, Any]]:
    return [
        {"id": "cmp-1", "name": "Spring launch", "status": "ACTIVE",
         "email_account_ids": ["acc-1"]},
        {"id": "cmp-2", "name": "Renewals", "status": "ACTIVE",
         "email_account_ids": ["acc-1", "acc-2"]},
    ]  # fmt: skip


def _leads() -> list[dict[str, Any]]:
    texts = ["Yes, interested: call me", "Not now, thanks", "Interested, send pricing",
             "Out of office until Monday", "Please remove me"]  # fmt: skip
    return [
        {"id": f"lead-{i + 1}", "campaign_id": "cmp-1" if i % 2 == 0 else "cmp-2",
         "conversation": text}
        for i, text in enumerate(texts)
    ]  # fmt: skip


@dataclass
class Smartlead:
    """What Smartlead holds for the tool's account; the sync reads it in six steps."""

    accounts: list[dict[str, Any]] = field(default_factory=_accounts)
    campaigns: list[dict[str, Any]] = field(default_factory=_campaigns)
    leads: list[dict[str, Any]] = field(default_factory=_leads)
    started_at: float = 1_700_000_000.0

    def install(self, server: Server) -> None:
        server.route("GET", "/smartlead/email-accounts", lambda r: Response(200, self.accounts))
        server.route("GET", "/smartlead/campaigns", lambda r: Response(200, self.campaigns))
        server.route("GET", r"/smartlead/campaigns/([\w-]+)/analytics", self.analytics)
        server.route("GET", r"/smartlead/campaigns/([\w-]+)/sequences", self.sequences)
        server.route("GET", "/smartlead/leads", self.page_of_leads)
        server.route("POST", "/revreply/classify", self.classify)

    def analytics(self, request: Request) -> Response:
        (campaign,) = request.params
        mine = [lead for lead in self.leads if lead["campaign_id"] == campaign]
        return Response(200, {
            "started_at": self.started_at, "sent_count": 100 * len(mine),
            "reply_count": len(mine), "positive_reply_count": 1, "bounce_count": 2,
            "last_reply_at": self.started_at + 3600, "last_positive_reply_at": self.started_at,
        })  # fmt: skip

    def sequences(self, request: Request) -> Response:
        (campaign,) = request.params
        return Response(200, [{"seq_number": n, "subject": f"{campaign} step {n}"} for n in (1, 2)])

    def page_of_leads(self, request: Request) -> Response:
        offset, limit = int(request.query.get("offset", 0)), int(request.query.get("limit", 100))
        page = self.leads[offset : offset + limit]
        following = offset + limit if offset + limit < len(self.leads) else None
        return Response(200, {"data": page, "next_offset": following})

    def classify(self, request: Request) -> Response:
        text = str(request.body["text"]).lower()
        if "interested" in text:
            category = "positive"
        elif "office" in text:
            category = "out_of_office"
        else:
            category = "negative"
        return Response(200, {"category": category})
