"""Printing: tables with rich when it is installed, aligned plain text otherwise."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

try:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
except ImportError:  # rich is an optional extra
    Console = None  # type: ignore[assignment,misc]
    Table = None  # type: ignore[assignment,misc]
    escape = None  # type: ignore[assignment]

# A pipe or a file gets the full width instead of rich's 80 columns.
_WIDTH = None if sys.stdout.isatty() else 200
_out = Console(highlight=False, width=_WIDTH) if Console is not None else None
_err = Console(stderr=True, highlight=False) if Console is not None else None


def say(text: str) -> None:
    """A line of the report (stdout), printed as is."""
    if _out is not None:
        _out.print(text, markup=False)
    else:
        print(text)


def progress(text: str) -> None:
    """A progress note on stderr, so stdout stays the report."""
    if _err is not None:
        _err.print(f"[dim]{escape(text)}[/dim]")
    else:
        print(text, file=sys.stderr, flush=True)


def table(title: str, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[str]]) -> None:
    """`columns` are (header, "left"|"right")."""
    if _out is not None and Table is not None:
        t = Table(title=title, title_justify="left", title_style="bold")
        for header, justify in columns:
            t.add_column(header, justify=justify)  # type: ignore[arg-type]
        for row in rows:
            t.add_row(*row)
        _out.print(t)
        return
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
        for i, (h, _) in enumerate(columns)
    ]

    def line(cells: Sequence[str]) -> str:
        parts = []
        for (_, justify), width, cell in zip(columns, widths, cells, strict=True):
            parts.append(cell.rjust(width) if justify == "right" else cell.ljust(width))
        return "  ".join(parts).rstrip()

    print(title)
    print(line([h for h, _ in columns]))
    print(line(["-" * w for w in widths]))
    for row in rows:
        print(line(row))
    print()


def rate(value: Any) -> str:
    return "-" if value is None else f"{value:,.0f}"


def ms(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 100 else f"{value:,.0f}"


def ratio(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}x"
