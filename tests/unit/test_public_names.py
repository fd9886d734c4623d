"""What the app's listings return is importable from `underway` itself, so code that keeps or
annotates a listing (a task manager's `get_all_stats()`) needs no private module."""

from __future__ import annotations

from pathlib import Path

import underway


def test_a_schedule_listing_holds_types_named_in_underway(tmp_path: Path) -> None:
    app = underway.App(f"sqlite:///{tmp_path / 'jobs.db'}")

    @app.periodic(every=60, schedule_name="beat")
    def beat() -> None: ...

    try:
        (info,) = app.list_schedules()
        assert type(info) is underway.ScheduleInfo
        assert type(info.stats) is underway.RunStats
        assert {"ScheduleInfo", "RunStats"} <= set(underway.__all__)
    finally:
        app.close()
