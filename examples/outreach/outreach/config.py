"""The outreach tool's settings: where its tables are, where the outside services answer, and
the thresholds the campaign monitor alerts on."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The five conditions the campaign metrics monitor raises an alert for."""

    #: reply rate (replies / sent) below this, once a campaign has sent `min_sample` emails
    min_reply_rate: float = 0.02
    #: bounce rate (bounces / sent) above this, once a campaign has sent `min_sample` emails
    max_bounce_rate: float = 0.05
    #: no positive reply for this many days (counted from the campaign's start if none yet)
    days_without_positive_reply: float = 7.0
    #: no reply at all for this many days (counted from the campaign's start if none yet)
    days_without_reply: float = 3.0
    #: emails sent reached this many
    sent_limit: int = 10_000
    #: rates mean nothing on a handful of emails
    min_sample: int = 50


@dataclass(frozen=True)
class Config:
    """Everything `create_app` needs; `Config.from_env()` reads OUTREACH_* variables."""

    #: the outreach tables and underway's jobs, in one database
    database_url: str = "sqlite:///outreach.db"
    #: base URL of the outside services (Multilogin, Selenium, Google, Smartlead)
    services_url: str = "http://127.0.0.1:8700"
    #: the administrator the startup work makes sure exists
    admin_email: str = "admin@outreach.example"
    #: leads read per request in the sync's fifth step (each page commits on its own)
    lead_page_size: int = 2
    thresholds: Thresholds = field(default_factory=Thresholds)

    @classmethod
    def from_env(cls) -> Config:
        """OUTREACH_DATABASE_URL and OUTREACH_SERVICES_URL, else the defaults."""
        return cls(
            database_url=os.environ.get("OUTREACH_DATABASE_URL", cls.database_url),
            services_url=os.environ.get("OUTREACH_SERVICES_URL", cls.services_url),
        )
