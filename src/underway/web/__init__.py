"""underway's HTTP API: JSON under /api/v1, Server-Sent Events, an OpenAPI schema.

    >>> from underway.web import create_api
    >>> their_app.mount("/underway", create_api(app))

Needs the web extra: pip install 'underway[web]'.
"""

from __future__ import annotations

try:
    import fastapi  # noqa: F401
    import sse_starlette  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        f"underway's HTTP API needs FastAPI and sse-starlette: pip install 'underway[web]' ({exc})"
    ) from None

from .api import create_api

__all__ = ["create_api"]
