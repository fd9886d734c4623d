"""How values look on the command line: the console, coloured statuses and states, progress
bars, times and durations, and the JSON form of records. Shared by every command (and the demo).

rich is imported inside the functions, so importing this module costs nothing until something
is drawn.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..model import Job, JobError, ScheduleInfo, Status
from ..secret import shown

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

STATUS_STYLES: dict[str, str] = {
    Status.PENDING: "yellow",
    Status.RUNNING: "bold cyan",
    Status.COMPLETED: "green",
    Status.FAILED: "bold red",
    Status.CANCELLED: "magenta",
}

#: The state of a task or schedule (RunStats.state, ScheduleInfo.state).
STATE_STYLES: dict[str, str] = {
    "ok": "green",
    "failing": "bold red",
    "running": "bold cyan",
    "paused": "yellow",
    "idle": "dim",
    "no scheduler": "bold yellow",
}


def make_console(stderr: bool = False) -> Console:
    """A rich console; when output is not a terminal (a pipe, CI) it is wide enough that job
    ids never wrap, and plain (no colour) unless FORCE_COLOR says otherwise."""
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 200
    return console


def is_unicode(console: Console) -> bool:
    return console.encoding.lower().startswith("utf")


# --- statuses and states --------------------------------------------------------------------


def styled(status: str) -> str:
    """A job status in rich markup, coloured."""
    return f"[{STATUS_STYLES.get(status, '')}]{status}[/]"


def styled_state(state: str) -> str:
    """A task or schedule state (ok, failing, running, paused, idle, no scheduler) in rich
    markup."""
    return f"[{STATE_STYLES.get(state, '')}]{state}[/]"


def status_text(job: Job, now: datetime | None = None, views: bool = True) -> Text:
    """The status, coloured; with `views`, the pending views (scheduled, retrying) and a
    pending cancel request spelled out."""
    from rich.text import Text

    text = Text(job.status.value, style=STATUS_STYLES.get(job.status, ""))
    if not views:
        return text
    now = now or datetime.now(UTC)
    if job.status is Status.PENDING:
        if job.attempt > 0:
            text.append(" (retrying)", style="dim")
        elif job.run_at > now:
            text.append(" (scheduled)", style="dim")
    elif job.status is Status.RUNNING and job.cancel_requested:
        text.append(" (cancelling)", style="dim")
    return text


def progress_text(progress: float | None, unicode: bool = True, width: int = 10) -> Text:
    """A small bar and a percentage, e.g. `█████░░░░░  50%`; empty when there is no progress."""
    from rich.text import Text

    if progress is None:
        return Text("")
    fraction = min(max(progress, 0.0), 1.0)
    filled = round(fraction * width)
    full, empty = ("█", "░") if unicode else ("#", "-")
    style = "green" if fraction >= 1.0 else "cyan"
    return Text.assemble(
        (full * filled, style), (empty * (width - filled), "dim"), f" {fraction * 100:3.0f}%"
    )


# --- times ----------------------------------------------------------------------------------


def relative(moment: datetime, now: datetime | None = None) -> str:
    """`in 4.2 s`, `3 min ago`..."""
    seconds = (moment - (now or datetime.now(UTC))).total_seconds()
    amount = abs(seconds)
    if amount < 60:
        span = f"{amount:.1f} s"
    elif amount < 3600:
        span = f"{amount / 60:.0f} min"
    elif amount < 86400:
        span = f"{amount / 3600:.1f} h"
    else:
        span = f"{amount / 86400:.1f} d"
    return f"in {span}" if seconds > 0 else f"{span} ago"


def local_time(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def took(seconds: float | None) -> str:
    """How long a run took: `85 ms`, `2.4 s`; `-` when unknown."""
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


# --- JSON -----------------------------------------------------------------------------------


def job_to_dict(job: Job) -> dict[str, Any]:
    """The job as JSON-ready data: ids and times as strings, the error as an object."""
    data = {f.name: jsonable(getattr(job, f.name)) for f in dataclasses.fields(job)}
    data["args"] = shown(job.args)  # sealed secrets and credentials are not printed
    return data


def schedule_to_dict(info: ScheduleInfo) -> dict[str, Any]:
    """The schedule as JSON-ready data, with its state and its run stats (and their state)."""
    data: dict[str, Any] = {
        f.name: jsonable(getattr(info, f.name))
        for f in dataclasses.fields(info)
        if f.name != "stats"
    }
    data["state"] = info.state
    stats = info.stats
    data["stats"] = {f.name: jsonable(getattr(stats, f.name)) for f in dataclasses.fields(stats)}
    data["stats"]["state"] = stats.state
    return data


def jsonable(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, JobError):
        return {"message": value.message, "type": value.type, "traceback": value.traceback}
    if isinstance(value, enum.Enum):
        return value.value
    return value
