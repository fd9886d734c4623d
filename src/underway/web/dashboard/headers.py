"""The security headers of every response the server sends, API and dashboard alike: a
Content-Security-Policy that allows scripts, styles and connections from this server only (no
inline script, no `on*` attributes, no inline style), and no framing by other sites. FastAPI's
own API docs pages get a policy of their own (`DOCS_POLICY`): they are not the dashboard's."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: every page's policy; the dashboard's templates and static files are written to it
POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)

#: the policy of FastAPI's interactive API docs (/docs, /redoc) alone: those pages are
#: FastAPI's, with an inline script that loads Swagger UI or ReDoc from their CDN
DOCS_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'unsafe-inline' https://cdn.jsdelivr.net",
        "style-src 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com",
        "font-src https://fonts.gstatic.com",
        "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly",
        "connect-src 'self'",
        "worker-src blob:",
        "frame-ancestors 'none'",
    )
)
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})

HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
)


class SecurityHeaders:
    """ASGI middleware adding `HEADERS` to every HTTP response, streamed ones included (an
    event stream must not be buffered, so this wraps `send` instead of the response)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        path: str = scope.get("path", "")
        root: str = scope.get("root_path", "")
        policy = DOCS_POLICY if path.removeprefix(root) in DOCS_PATHS else POLICY
        headers = ((b"content-security-policy", policy.encode()), *HEADERS)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in headers if n not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)
