"""Putting the dashboard into the API's app: its routes, its static files, its login redirect,
and the security headers every response carries."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from . import actions, fleet, login, pages
from .headers import SecurityHeaders
from .session import LoginRequired

#: every page of the dashboard, by path (the jobs page with each of its views)
PAGES: tuple[str, ...] = (
    "/",
    "/jobs",
    "/jobs?status=running",
    "/jobs?view=scheduled",
    "/jobs?view=retrying",
    "/dead-letters",
    "/schedules",
    "/queues",
    "/workers",
)
#: one job's page
JOB_PAGE = "/jobs/{id}"

STATIC = Path(__file__).resolve().parent / "static"


def install(api: FastAPI) -> None:
    """Serve the dashboard from `api` (made by `create_api`)."""
    api.include_router(login.router)
    api.include_router(pages.router)
    api.include_router(fleet.router)
    api.include_router(actions.router)
    api.mount("/static", StaticFiles(directory=STATIC), name="dashboard-static")
    api.add_exception_handler(LoginRequired, login.to_login)  # type: ignore[arg-type]
    api.add_middleware(SecurityHeaders)
