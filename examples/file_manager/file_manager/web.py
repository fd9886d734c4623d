"""The file manager's own small site: a page that starts scans and copies and watches them
live, built on underway's HTTP API (mounted at /underway) and its Server-Sent Events stream
(/underway/api/v1/events); plus the file index from the example's own tables.

The API is served without keys, so the site listens on a loopback address only (see
`__main__.py`): anyone who reaches it may start and cancel jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

import underway
from underway.web import create_api

from .app import FileManager
from .index import open_index

PAGE = Path(__file__).with_name("page.html")


def create_site(manager: FileManager, *, worker: bool = True, concurrency: int = 4) -> FastAPI:
    """The site of `manager`. With `worker`, it runs an underway worker on its own event loop
    while it serves, so one process does everything."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(manager.prepare)
        if not worker:
            yield
            return
        running = underway.Worker(manager.app, concurrency=concurrency)
        task = asyncio.create_task(running.run(handle_signals=False))
        try:
            yield
        finally:
            running.stop()
            await task

    site = FastAPI(title="file manager", lifespan=lifespan)
    site.mount("/underway", create_api(manager.app, insecure_no_auth=True))

    @site.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE.read_text()

    @site.get("/api/files")
    def files(root: str) -> list[dict[str, Any]]:
        """What the latest scan of `root` found."""
        with open_index(manager.index_url) as index:
            return [dataclasses.asdict(entry) for entry in index.files(root)]

    return site
