"""The outreach tool's background work (seed 000) on underway: the OAuth task manager, the
hourly session cleanup, the campaign metrics monitor, the resumable Smartlead sync and the
startup work, each with a scope of its own per run."""

from .app import Outreach, create_app
from .config import Config, Thresholds

__all__ = ["Config", "Outreach", "Thresholds", "create_app"]
