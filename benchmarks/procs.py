"""Start several benchmark processes together and time them as one run.

Each process gets ready on its own (interpreter, imports, connections), prints one JSON line,
then waits for a line on stdin. Once every process is ready, all are told to go at once; each
times its own work with the wall clock and prints a JSON result line with `started` and `ended`
(`time.time()`). The run lasts from the first start to the last end: the processes run on one
machine, so their clocks agree.
"""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import sys
import tempfile
import threading
from typing import IO, Any


def wait_for_go(ready: dict[str, Any] | None = None) -> None:
    """In the child: say we are ready, then block until the parent says go."""
    print(json.dumps({"ready": True, **(ready or {})}), flush=True)
    if not sys.stdin.readline():
        raise SystemExit("the benchmark went away before saying go")


def run_together(commands: list[list[str]], timeout: float) -> list[dict[str, Any]]:
    """Run `commands` as processes that call `wait_for_go`; return each one's last JSON line.
    Raises RuntimeError with the stderr of a process that failed."""
    procs: list[tuple[subprocess.Popen[str], IO[str]]] = []
    with contextlib.ExitStack() as files:
        try:
            for cmd in commands:
                err: IO[str] = files.enter_context(tempfile.TemporaryFile("w+"))
                proc = subprocess.Popen(
                    cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True
                )
                procs.append((proc, err))
            for proc, err in procs:
                line = _readline(proc, timeout=120)
                if not line.strip().startswith("{"):
                    raise RuntimeError(_failure(proc, err, "did not get ready"))
            for proc, _ in procs:  # go, as close together as we can
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()
            results = []
            for proc, err in procs:
                try:
                    out, _ = proc.communicate(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()
                    raise RuntimeError(
                        _failure(proc, err, f"ran longer than {timeout:g} s")
                    ) from None
                lines = [x for x in out.strip().splitlines() if x.startswith("{")]
                if proc.returncode != 0 or not lines:
                    raise RuntimeError(_failure(proc, err, f"exited {proc.returncode}"))
                results.append(json.loads(lines[-1]))
            return results
        finally:
            for proc, _ in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()


def span(results: list[dict[str, Any]]) -> float:
    """Seconds from the first process's start to the last one's end."""
    return max(r["ended"] for r in results) - min(r["started"] for r in results)


def cpu_ticks() -> tuple[int, int] | None:
    """(busy, total) CPU ticks of the whole machine so far, from /proc/stat (Linux)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """How busy all cores were between two `cpu_ticks()` readings (0..1), whoever used them."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    stream = proc.stdout
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return ""


def _failure(proc: subprocess.Popen[str], err: IO[str], what: str) -> str:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    err.seek(0)
    return f"{' '.join(proc.args[:4])} ... {what}:\n{err.read()[-4000:]}"  # type: ignore[index]
