"""The largest request body the server reads: a job's arguments at their limit (the setting
max_args_bytes) and room for the rest of the request. A larger body is refused with 413 before
it is read: at once when its Content-Length says so, and as soon as the bytes streamed in pass
the limit when it has none (chunked) or lies. So a client cannot make the server hold a body
of any size in memory, however slowly it sends it."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: room for everything in a request besides a job's arguments (task name, options, JSON syntax)
ENVELOPE_BYTES = 64 * 1024


def too_large(size: str, limit: int) -> str:
    return (
        f"the request's body is {size} bytes, over the limit of {limit:,} (the setting "
        f"max_args_bytes plus {ENVELOPE_BYTES // 1024} KiB for the rest of the request); store "
        "large data elsewhere and pass a reference"
    )


class BodyLimit:
    """ASGI middleware: 413 for a request body over `limit` bytes, without reading it all."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            answer = JSONResponse({"detail": too_large(f"{declared:,}", self.limit)}, 413)
            await answer(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    # Raised into the route reading the body; FastAPI answers it as any
                    # HTTP error, and the rest of the body is never read.
                    raise HTTPException(413, too_large(f"over {seen:,}", self.limit))
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server (uvicorn) refuses a malformed length itself
    return None
