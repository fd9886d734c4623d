"""Who looks at the dashboard: the session cookie a login sets, and the `Viewer` each page
is rendered for.

The cookie holds the API key the user logged in with (HttpOnly, so no script can read it;
SameSite=Lax, so no other site's form or script sends it; Secure over HTTPS). Every request
authenticates it again, so revoking a key ends its sessions at once. Under
--insecure-no-auth nobody logs in: the cookie then holds a random nonce that only the CSRF
token is derived from (csrf.py), so forged requests are refused there too.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from fastapi import Request, Response

from ..access import SESSION_COOKIE, Scope, get_app
from .csrf import token_for

#: how long a login lasts without use (the key may be revoked sooner)
SESSION_SECONDS = 12 * 3600
#: the prefix of the nonce an unauthenticated session (--insecure-no-auth) holds
ANONYMOUS = "anonymous."


@dataclass(frozen=True, slots=True)
class Viewer:
    """The person a page is rendered for: their rights, and their session's secret."""

    scope: Scope
    secret: str  # the session cookie's value
    fresh: bool = False  # the cookie is set by this response

    @property
    def csrf(self) -> str:
        return token_for(self.secret)

    @property
    def can_log_out(self) -> bool:
        return not self.secret.startswith(ANONYMOUS)


class LoginRequired(Exception):
    """No session, or its key no longer works: the page redirects to the login form."""

    def __init__(self, after: str) -> None:
        super().__init__(after)
        self.after = after  # where to go once logged in


async def find_viewer(request: Request) -> Viewer | None:
    """The viewer of this request, or None when it has no valid session."""
    secret = request.cookies.get(SESSION_COOKIE)
    if request.app.state.insecure_no_auth:
        if secret:
            return Viewer(Scope(None, None), secret)
        return Viewer(Scope(None, None), ANONYMOUS + secrets.token_urlsafe(24), fresh=True)
    if not secret:
        return None
    key = await get_app(request).authenticate_async(secret)
    if key is None:
        return None
    return Viewer(Scope(key, key.tenant), secret)


async def viewer(request: Request) -> Viewer:
    """The viewer of a page; without a valid session, off to the login form."""
    found = await find_viewer(request)
    if found is None:
        query = f"?{request.url.query}" if request.url.query else ""
        raise LoginRequired(request.url.path + query)
    return found


def remember(request: Request, response: Response, viewer: Viewer) -> None:
    """Set the session cookie when this response starts the session."""
    if viewer.fresh:
        start(request, response, viewer.secret)


def start(request: Request, response: Response, secret: str) -> None:
    """Start a session holding `secret` (an API key, or an anonymous nonce)."""
    response.set_cookie(
        SESSION_COOKIE, secret, max_age=SESSION_SECONDS, path=cookie_path(request),
        httponly=True, samesite="lax", secure=request.url.scheme == "https",
    )  # fmt: skip


def end(request: Request, response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path=cookie_path(request), httponly=True)


def cookie_path(request: Request) -> str:
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/") or "/"
