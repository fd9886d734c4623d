"""The app `./run bench --only dashboard` serves with `underway serve dashboard_app:app`: the
tasks and the schedule the filled store's jobs name, on the store in $UNDERWAY_DATABASE_URL."""

from __future__ import annotations

from datetime import timedelta

import underway

#: the tasks the fill spreads its jobs over
TASKS = tuple(f"bench.task_{n}" for n in range(10))
#: the schedule that made some of them (they are jobs of bench.task_1)
SCHEDULE = "bench.every_minute"
#: the task of the few jobs run for real, so a job has attempts to show
FLAKY_TASK = "bench.flaky"


def make_app(url: str | None = None) -> underway.App:
    """The dashboard benchmark's app; `url` None reads UNDERWAY_DATABASE_URL."""
    app = underway.App(url) if url else underway.App()
    for name in TASKS:

        def task(size: int = 0) -> int:
            return size

        app.task(name=name)(task)

    @app.periodic(every=timedelta(minutes=1), name=SCHEDULE)
    def every_minute() -> None:
        return None

    @app.task(name=FLAKY_TASK, queue="detail", retry=underway.Backoff(base=0.01, jitter=False))
    def flaky(ctx: underway.Context) -> str:
        ctx.report_progress(0.5, "half way")
        if ctx.job.attempt == 1:
            raise RuntimeError("the first attempt fails, so the job has two to show")
        return "done"

    return app


def __getattr__(name: str) -> underway.App:
    # `app` is made when `underway serve` asks for it, not when the benchmark imports this
    # module for make_app (it has no UNDERWAY_DATABASE_URL then).
    if name == "app":
        return make_app()
    raise AttributeError(name)
