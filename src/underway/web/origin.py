"""Refusing cross-site requests that change anything, for the JSON API and the dashboard
alike: a browser on another site could otherwise use credentials it holds for this server
(a session cookie, a key some browser extension injects, an `--insecure-no-auth` server on
loopback) to pause a queue or delete jobs.

A browser says where a request comes from in `Origin` (or, without one, `Sec-Fetch-Site`).
A request that names another site is refused with 403 before any route sees it. A request
with neither header is not a browser's (curl, httpx, a worker's client): it passes, and its
bearer key decides what it may do, as before.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

#: methods that only read: every other one is a change that must come from this site
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def same_origin(request: HTTPConnection) -> bool:
    """Whether the browser says this request comes from a page of this server. A request
    without Origin and Sec-Fetch-Site (not a browser, or a very old one) passes."""
    origin = request.headers.get("origin")
    if origin is not None:
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        return origin == own
    return request.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")


class CrossSiteGuard:
    """ASGI middleware: 403 for a change (POST, PUT, PATCH, DELETE) to the JSON API (under
    /api/) that another site asked for. The dashboard's forms make the same check themselves
    (dashboard/csrf.py), and answer a browser with a page that says why."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        changes = scope["type"] == "http" and scope["method"] not in SAFE_METHODS
        path: str = scope.get("path", "")
        changes = changes and path.removeprefix(scope.get("root_path", "")).startswith("/api/")
        if changes and not same_origin(HTTPConnection(scope)):
            refused = JSONResponse(
                {"detail": "this request came from another site (its Origin or Sec-Fetch-Site "
                 "is not this server's); refused as a possible cross-site request forgery. "
                 "API clients send no Origin header."},
                status_code=403,
            )  # fmt: skip
            await refused(scope, receive, send)
            return
        await self.app(scope, receive, send)
