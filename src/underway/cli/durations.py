"""Durations as people type them: `90s`, `15m`, `3h`, `3d`, `2w`, `1h30m`, `1.5h`, `600`."""

from __future__ import annotations

import re
from typing import Any

import click

DURATION_UNITS: dict[str, int] = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)([wdhms]?)")
_DURATION_EXAMPLES = "for example 90s, 15m, 3h, 3d, 2w or 1h30m"
_LONGEST = 1000 * 365 * 86_400.0  # beyond any retention, and within what the stores can count


def parse_duration(text: str) -> float:
    """Seconds in `text`: a number with a unit (s, m, h, d, w), several of them (`1h30m`), or
    plain seconds (`600`). Raises ValueError naming the accepted forms."""
    compact = text.strip().lower().replace(" ", "")
    parts = list(_DURATION_PART.finditer(compact))
    if not compact or "".join(p[0] for p in parts) != compact:
        raise ValueError(f"{text!r} is not a duration ({_DURATION_EXAMPLES})")
    if len(parts) > 1 and not all(p[2] for p in parts):
        raise ValueError(f"{text!r} mixes numbers with and without units ({_DURATION_EXAMPLES})")
    seconds = sum(float(p[1]) * DURATION_UNITS[p[2] or "s"] for p in parts)
    if seconds > _LONGEST:
        raise ValueError(f"{text!r} is longer than 1000 years")
    return seconds


def format_duration(seconds: float) -> str:
    """The largest units first: `1w`, `3d`, `1h30m`, `1m30s`, `0.5s`."""
    out: list[str] = []
    rest = max(seconds, 0.0)
    for unit, size in DURATION_UNITS.items():
        if unit == "s":
            break
        count = int(rest // size)
        if count:
            out.append(f"{count}{unit}")
            rest -= count * size
    if round(rest, 3) or not out:
        out.append(f"{round(rest, 3):g}s")
    return "".join(out)


def duration_option(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """A click callback: the option's seconds, or a usage error that names the option."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None
