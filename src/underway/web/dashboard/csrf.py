"""Protection against cross-site request forgery, for every dashboard action (a POST).

Three checks, each enough on its own against today's browsers: the session cookie is
SameSite=Lax, so another site's form posts arrive without it; the form must carry a token
derived from the session's secret, which another site cannot read; and a request whose
Origin (or, without one, Sec-Fetch-Site) says it came from another site is refused before
anything else. The token is an HMAC of the secret, so it needs no server-side state and
survives restarts.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import HTTPException, Request, status

from ..origin import same_origin

__all__ = ["check", "same_origin", "token_for"]

#: what the token is an HMAC of the session's secret for (one purpose, one key)
PURPOSE = b"underway dashboard csrf v1"


def token_for(secret: str) -> str:
    """The CSRF token of a session."""
    return hmac.new(secret.encode(), PURPOSE, hashlib.sha256).hexdigest()


def check(request: Request, secret: str | None, token: str | None) -> None:
    """Refuse (403) a state-changing request that another site may have made."""
    if not same_origin(request):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "this request came from another site (its Origin is not this server's); "
            "refused as a possible cross-site request forgery",
        )
    if not secret or not token or not hmac.compare_digest(token, token_for(secret)):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "this form's security token is missing or stale: reload the page and try again",
        )
