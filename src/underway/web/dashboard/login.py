"""Logging in: a form that takes an API key (`underway keys APP create`) and starts a session
holding it. The key travels in the POST body only, never in a URL."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse

from ..access import get_app
from . import csrf
from .actions import MAX_FORM_BYTES, back_to, refused
from .rendering import base_path, render_bare
from .session import LoginRequired, find_viewer, start

router = APIRouter(include_in_schema=False)


def login_page(request: Request, after: str, error: str | None = None, code: int = 200) -> Response:
    body = render_bare(
        "login.html", base=base_path(request), after=back_to(request, after), error=error
    )
    return HTMLResponse(body, status_code=code)


@router.get("/login")
async def login_form(request: Request) -> Response:
    after = request.query_params.get("next")
    found = await find_viewer(request)
    if found is not None and not found.fresh:
        return RedirectResponse(back_to(request, after), status_code=status.HTTP_303_SEE_OTHER)
    if request.app.state.insecure_no_auth:  # nobody logs in
        return RedirectResponse(back_to(request, after), status_code=status.HTTP_303_SEE_OTHER)
    return login_page(request, after or "")


@router.post("/login")
async def login(request: Request) -> Response:
    # No session yet, so no token to check: refusing other sites' posts stops them from
    # logging a browser in with the attacker's own key.
    if not csrf.same_origin(request):
        return refused(request, "a login from another site is refused", 403)
    body = await request.body()
    form = dict(parse_qsl(body[:MAX_FORM_BYTES].decode("utf-8", "replace")))
    secret = form.get("key", "").strip()
    after = form.get("next", "")
    key = await get_app(request).authenticate_async(secret) if secret else None
    if key is None:
        return login_page(
            request, after, "That key is unknown or revoked. Make one with "
            "`underway keys APP create`.", code=status.HTTP_401_UNAUTHORIZED,
        )  # fmt: skip
    response = RedirectResponse(back_to(request, after), status_code=status.HTTP_303_SEE_OTHER)
    start(request, response, secret)
    return response


def to_login(request: Request, exc: LoginRequired) -> Response:
    """What a page without a session answers: 401 with the login form in place of the page
    (nothing of the page itself), which brings the browser back to it once logged in."""
    return login_page(request, exc.after, code=status.HTTP_401_UNAUTHORIZED)
