"""The one-line message an action leaves for the page it redirects to ("Job cancelled", or
why it was refused), carried in a short-lived cookie and shown once."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from fastapi import Request, Response

COOKIE = "underway_flash"


@dataclass(frozen=True, slots=True)
class Flash:
    kind: str  # "ok" or "error"
    text: str


def leave(response: Response, request: Request, kind: str, text: str, path: str) -> None:
    """Leave `text` for the next page under `path`."""
    raw = json.dumps({"kind": kind, "text": text[:500]}).encode()
    response.set_cookie(
        COOKIE, base64.urlsafe_b64encode(raw).decode(), max_age=60, path=path,
        httponly=True, samesite="lax", secure=request.url.scheme == "https",
    )  # fmt: skip


def take(request: Request) -> Flash | None:
    """The message waiting for this page, if any (`forget` it in the response)."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        found = json.loads(base64.urlsafe_b64decode(raw.encode()))
    except ValueError:
        return None
    if not isinstance(found, dict) or found.get("kind") not in ("ok", "error"):
        return None
    return Flash(str(found["kind"]), str(found.get("text", "")))


def forget(response: Response, path: str) -> None:
    response.delete_cookie(COOKIE, path=path)
