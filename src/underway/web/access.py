"""Who is asking, and what they may see: the one place tenant isolation is decided.

Every route takes a `Scope` from `authorize`. Routes never compare tenants themselves: they
ask the scope for the tenant filter of a list (`tenant_filter`; `elsewhere` when a tenant key
asks for another tenant, whose answer is empty), the tenant of a new job
(`tenant_for_enqueue`), whether a job is visible (`visible`, which `job_or_404` applies), and
for admin rights (`require_admin`). A job of another tenant answers 404, exactly as a job that
does not exist, so a tenant key cannot even learn that an id is taken.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..app import App
from ..keys import ApiKey
from ..model import Job

#: the dashboard's session cookie (dashboard/session.py): it holds the key the user logged in with
SESSION_COOKIE = "underway_session"
#: the methods a session cookie may authorize: reading only, so that no other site can make a
#: logged-in browser change anything through the JSON API (the dashboard's own forms check a
#: CSRF token instead)
COOKIE_METHODS = frozenset({"GET", "HEAD"})

_bearer = HTTPBearer(
    auto_error=False,
    description="An API key made with `underway keys APP create`: `Authorization: Bearer uw_...`",
)


@dataclass(frozen=True, slots=True)
class Scope:
    """The rights of one request: an admin key sees every tenant, a tenant key only its own."""

    key: ApiKey | None  # None: the server runs with --insecure-no-auth
    tenant: str | None  # None: every tenant

    @property
    def admin(self) -> bool:
        return self.tenant is None

    def tenant_filter(self, asked: str | None) -> str | None:
        """The tenant a list or stream is filtered by, given the one the client asked for
        (check `elsewhere` first: its answer is empty)."""
        return asked if self.admin else self.tenant

    def elsewhere(self, asked: str | None) -> bool:
        """Whether a tenant key asks for another tenant's jobs: it sees none of them."""
        return not self.admin and asked is not None and asked != self.tenant

    def tenant_for_enqueue(self, asked: str | None) -> str | None:
        """The tenant a new job goes into; a tenant key naming another tenant is refused."""
        if self.admin:
            return asked
        if asked is not None and asked != self.tenant:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"this key belongs to tenant {self.tenant!r}; it cannot enqueue into {asked!r}",
            )
        return self.tenant

    def visible(self, job: Job) -> bool:
        return self.admin or job.tenant == self.tenant

    def require_admin(self, what: str) -> None:
        if not self.admin:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"{what} needs an admin key (made without --tenant); this key is for "
                f"tenant {self.tenant!r}",
            )


def get_app(request: Request) -> App:
    """The underway App this API serves."""
    app: App = request.app.state.underway
    return app


async def authorize(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Scope:
    """The caller's scope from its bearer key (or, to read, the dashboard's session cookie:
    the browser's event stream sends no header); 401 without a key or with a bad or revoked
    one."""
    if request.app.state.insecure_no_auth:
        return Scope(None, None)
    secret = request.cookies.get(SESSION_COOKIE) if request.method in COOKIE_METHODS else None
    if credentials is not None and credentials.scheme.lower() == "bearer":
        secret = credentials.credentials
    if not secret:
        raise _unauthorized("an API key is required: send `Authorization: Bearer <key>`")
    key = await get_app(request).authenticate_async(secret)
    if key is None:
        raise _unauthorized("this API key is unknown or revoked")
    request.app.state.key_tenants.remember(secret, key)
    return Scope(key, key.tenant)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"}
    )


AppDep = Annotated[App, Depends(get_app)]
ScopeDep = Annotated[Scope, Depends(authorize)]


async def job_or_404(app: App, scope: Scope, job_id: uuid.UUID) -> Job:
    """The job, if it exists and the scope may see it; 404 otherwise (both alike)."""
    job = await app.get_job_async(job_id)
    if job is None or not scope.visible(job):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job with id {job_id}")
    return job
