"""The app the HTTP API tests serve, and that their worker processes run:
`python -m underway worker webapp:app` with UNDERWAY_DATABASE_URL set (this directory on the
path). `declare(app)` puts the same tasks on any App."""

from __future__ import annotations

import time
from datetime import timedelta

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

    @app.periodic(every=timedelta(hours=1), name="web.hourly")
    def hourly() -> None:
        pass

    return app


app = declare(underway.App())
