"""The HTTP API as an ASGI app: `create_api(app)` serves an underway App under /api/v1, and
can be mounted in the user's own ASGI app."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..app import App
from ..errors import (
    ArgumentsTooLarge,
    ConfigurationError,
    DuplicateKey,
    InvalidArguments,
    InvalidTransition,
    JobExists,
    JobNotFound,
    KeyNotFound,
    QuotaExceeded,
    ScheduleDeclaredInCode,
    StoreError,
    UnderwayError,
    UnknownTask,
)
from . import control, dashboard, events, jobs, ops
from .access import authorize
from .admission import EarlyRefusal, KeyTenants, over_quota
from .limits import ENVELOPE_BYTES, BodyLimit
from .origin import CrossSiteGuard
from .schemas import Problem

#: each of underway's own errors, as the status code it answers with (the first match wins)
STATUS_OF: tuple[tuple[type[UnderwayError], int], ...] = (
    (UnknownTask, status.HTTP_404_NOT_FOUND),
    (JobNotFound, status.HTTP_404_NOT_FOUND),
    (KeyNotFound, status.HTTP_404_NOT_FOUND),
    (ScheduleDeclaredInCode, status.HTTP_409_CONFLICT),
    (ArgumentsTooLarge, status.HTTP_413_CONTENT_TOO_LARGE),
    (InvalidArguments, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (ConfigurationError, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (InvalidTransition, status.HTTP_409_CONFLICT),
    (DuplicateKey, status.HTTP_409_CONFLICT),
    (JobExists, status.HTTP_409_CONFLICT),
    (StoreError, status.HTTP_503_SERVICE_UNAVAILABLE),
)


def create_api(app: App, *, insecure_no_auth: bool = False) -> FastAPI:
    """The HTTP API of `app`: JSON under /api/v1, Server-Sent Events at /api/v1/events, the
    schema at /openapi.json, and the dashboard at / (its pages built on the same calls).
    Every call needs `Authorization: Bearer <key>` (see `underway
    keys`) unless `insecure_no_auth`, which serves everyone as an admin: only for a server
    that listens on loopback. Changes (POST, PUT, PATCH, DELETE) a browser sends from another
    site are refused (403), and so is a body over max_args_bytes + 64 KiB (413, unread).

    >>> their_app.mount("/underway", create_api(app))
    """
    api = FastAPI(
        title="underway",
        summary="Durable background jobs: enqueue, inspect, control and follow them live.",
        version="1",
    )
    api.state.underway = app
    api.state.insecure_no_auth = insecure_no_auth
    api.state.key_tenants = KeyTenants()
    v1 = APIRouter(
        prefix="/api/v1",
        dependencies=[Depends(authorize)],
        responses={
            401: {"model": Problem, "description": "no key, or a bad or revoked one"},
            413: {"model": Problem, "description": "a body over max_args_bytes + 64 KiB"},
            422: {"model": Problem, "description": "a malformed request (`detail` says why)"},
        },
    )
    v1.include_router(jobs.router)
    v1.include_router(events.router)
    v1.include_router(control.router)
    api.include_router(v1)
    api.include_router(
        ops.router,
        dependencies=[Depends(authorize)],
        responses={401: {"model": Problem, "description": "no key, or a bad or revoked one"}},
    )
    # Innermost of ours: cross-site and size checks come first, security headers wrap it.
    api.add_middleware(EarlyRefusal, producer=app.producer, keys=api.state.key_tenants)
    dashboard.install(api)
    api.add_middleware(BodyLimit, limit=app.settings.max_args_bytes + ENVELOPE_BYTES)
    api.add_middleware(CrossSiteGuard)
    api.add_exception_handler(UnderwayError, _error_handler)  # type: ignore[arg-type]
    api.add_exception_handler(StarletteHTTPException, _http_error_handler)  # type: ignore[arg-type]
    api.add_exception_handler(RequestValidationError, _validation_error_handler)  # type: ignore[arg-type]
    api.openapi = _with_task_names(api, app)  # type: ignore[method-assign]
    return api


def _with_task_names(api: FastAPI, app: App) -> Callable[[], dict[str, Any]]:
    """FastAPI's schema, with the names of the tasks registered by the time it is first asked
    for (a user's tasks are declared at import, before serving) as the choices of `task`."""
    build = api.openapi

    def schema() -> dict[str, Any]:
        first = api.openapi_schema is None
        found = build()
        if first and app.tasks:
            task = found["components"]["schemas"]["EnqueueIn"]["properties"]["task"]
            task["enum"] = sorted(app.tasks)
        return found

    return schema


async def _http_error_handler(request: Request, exc: StarletteHTTPException) -> Response:
    """FastAPI's own HTTP errors, except that a body it cannot parse is 422 like any other
    malformed request (FastAPI answers 400 for some of those)."""
    if exc.status_code == status.HTTP_400_BAD_REQUEST:
        exc = StarletteHTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, exc.detail)
    return await http_exception_handler(request, exc)


async def _validation_error_handler(request: Request, exc: RequestValidationError) -> Response:
    """FastAPI's 422 for a malformed request, except that what JSON cannot carry is quoted as
    text: a body that is not text (pickle bytes, say) and numbers JSON has no form for (1e309
    read as infinity, NaN), which FastAPI's own handler cannot encode, answering 500."""
    errors = [_printable(error) for error in exc.errors()]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


def _printable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value[:200].decode("utf-8", "replace")
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # 'inf', 'nan'
    if isinstance(value, dict):
        return {key: _printable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_printable(item) for item in value]
    return value


def _error_handler(request: Request, exc: UnderwayError) -> Response:
    if isinstance(exc, QuotaExceeded):
        return over_quota(exc)
    code = next(
        (code for kind, code in STATUS_OF if isinstance(exc, kind)),
        status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
    return JSONResponse({"detail": str(exc)}, status_code=code)
