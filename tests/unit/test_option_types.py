"""What mypy sees of enqueue options and prepared calls: a misspelled option or a call that
does not fit the task is a type error, not only a run-time one (decision 0020)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SNIPPET = """
import underway

app = underway.App("sqlite:///:memory:")

@app.task
def report(tenant: str, month: int = 1) -> None: ...

report.options(tenant="a", key="k").prepare("a", month=2)
report.options(tennant="a")
report.options(queue="q").options(prio=1)
report.options(tenant="a").prepare(month="march")
reveal_type(report.options(tenant="a").prepare("a"))
report.enqueue_many([report.prepare("a"), {"tenant": "b"}, ("c", 3)])
"""


def test_mypy_refuses_misspelled_options_and_calls_that_do_not_fit(tmp_path: Path) -> None:
    snippet = tmp_path / "options_snippet.py"
    snippet.write_text(SNIPPET)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary",
         "--cache-dir", str(tmp_path / "mypy-cache"), str(snippet)],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    errors = {int(n) for n in re.findall(r"options_snippet\.py:(\d+): error", done.stdout)}
    lines = SNIPPET.splitlines()
    expected = {n for n, line in enumerate(lines, 1) if "tennant" in line or "prio=" in line}
    expected |= {n for n, line in enumerate(lines, 1) if 'month="march"' in line}
    assert errors == expected, done.stdout + done.stderr
    assert "Prepared[[tenant: str, month: int =], None]" in (done.stdout), done.stdout
