"""DocFlow, a multi-tenant document platform, rebuilt on underway (seed 001): its seven
background jobs, its own tables, and the outside services it calls played by local ones."""

from .app import DocFlow, create
from .db import Database
from .jobs import DocFlowJobs, Outside
from .platform import ClassificationFailed, Platform, UploadRefused, Usage
from .services import Billing, LocalService, Notifications, WebhookReceiver

__all__ = [
    "Billing",
    "ClassificationFailed",
    "Database",
    "DocFlow",
    "DocFlowJobs",
    "LocalService",
    "Notifications",
    "Outside",
    "Platform",
    "UploadRefused",
    "Usage",
    "WebhookReceiver",
    "create",
]
