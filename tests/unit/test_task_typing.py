"""What mypy infers for a task declared as a class: `app.task_class(Cls)` types `enqueue` (and
its options and async twin) with the parameters of `execute`, without `self` and `ctx`, so a
wrong argument is a type error before anything runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SNIPPET = """
import underway
from underway import Context

app = underway.App("sqlite:///typing.db")


class Storage: ...


def open_storage() -> Storage:
    return Storage()


class CopyOperation(underway.TaskClass):
    queue = "files"
    deps = {"storage": open_storage}

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def execute(self, ctx: Context, src: str, dst: str) -> int:
        return 0


class Scan(underway.TaskClass):
    def execute(self, root: str, depth: int = 1) -> list[str]:
        return [root]


copy = app.task_class(CopyOperation, queue="other")
scan = app.task_class(Scan)
reveal_type(copy)
reveal_type(scan)
copy.enqueue(src="a", dst="b")
copy.options(priority=1).enqueue("a", "b")
scan.enqueue("r", depth=2)
copy.enqueue(src="a", dst=3)  # line 37: wrong type
scan.enqueue(root="r", depht=2)  # line 38: no such parameter
copy.options(id="x").enqueue(src=1, dst="b")  # line 39: wrong type through options
"""


def test_enqueue_of_a_class_task_is_typed_from_execute(tmp_path: Path) -> None:
    snippet = tmp_path / "task_class_snippet.py"
    snippet.write_text(SNIPPET.lstrip("\n"))
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary",
         "--cache-dir", str(tmp_path / "mypy-cache"), str(snippet)],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    output = done.stdout + done.stderr
    revealed = re.findall(r'Revealed type is "(.*)"', output)
    assert revealed == [
        "underway.task_classes.ClassTask[[src: str, dst: str], typing.Coroutine[Any, Any, int]]",
        "underway.task_classes.ClassTask[[root: str, depth: int =], list[str]]",
    ], output
    errors = re.findall(r":(\d+): error: (.*)", output)
    assert [int(line) for line, _ in errors] == [37, 38, 39], output
    assert 'Argument "dst" to "enqueue"' in errors[0][1] and '"str"' in errors[0][1]
    assert 'Unexpected keyword argument "depht"' in errors[1][1]
    assert 'Argument "src" to "enqueue"' in errors[2][1]
