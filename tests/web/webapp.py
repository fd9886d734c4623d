"""The app the HTTP API tests serve, and that their worker processes run:
`python -m underway worker webapp:app` with UNDERWAY_DATABASE_URL set (this directory on the
path). `declare(app)` puts the same tasks on any App."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import underway


def declare(app: underway.App) -> underway.App:
    @app.task(name="web.add", queue="math", priority=1)
    def add(a: int, b: int = 0) -> int:
        """Adds two numbers."""
        return a + b

    @app.task(name="web.steps")
    def steps(ctx: underway.Context, count: int = 3, pause: float = 0.15) -> str:
        """Reports `count` progress steps, `pause` seconds apart."""
        for i in range(1, count + 1):
            time.sleep(pause)
            ctx.report_progress(i / count, f"step {i} of {count}")
        return "done"

    @app.task(name="web.boom", max_attempts=1)
    def boom(reason: str = "boom") -> None:
        raise ValueError(reason)

    @app.task(name="web.greet")
    async def greet(name: str, *, shout: bool = False, tags: list[str] | None = None) -> str:
        text = f"hello {name}"
        return text.upper() if shout else text

    @app.task(name="web.gated", title="Gated job")
    def gated(ctx: underway.Context, gate: str) -> str:
        """Halfway at once, then waits for the file `gate` to exist (or a cancel): a job a
        test holds running as long as it needs."""
        ctx.report_progress(0.5, "halfway: waiting for the gate")
        while not Path(gate).exists():
            if ctx.wait_cancelled(0.05):
                return "cancelled"
        ctx.report_progress(1.0, "through the gate")
        return "done"

    @app.task(name="web.flaky", max_attempts=1)
    def flaky(flag: str) -> str:
        """Fails while the file `flag` does not exist, creating it: fails once, then works."""
        if not Path(flag).exists():
            Path(flag).touch()
            raise RuntimeError("the first run always fails")
        return "worked the second time"

    @app.periodic(every=timedelta(hours=1), name="web.hourly")
    def hourly() -> None:
        pass

    return app


app = declare(underway.App())
