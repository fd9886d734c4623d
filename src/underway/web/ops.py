"""GET /health and GET /metrics: for load balancers, probes and Prometheus. Both need an admin
key like every other call (Prometheus sends one with `authorization: {credentials: ...}` in
its scrape config), unless the server runs with --insecure-no-auth."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Response, status
from fastapi.responses import JSONResponse

from .. import health, metrics
from .access import AppDep, ScopeDep

router = APIRouter(tags=["operations"])


@router.get(
    "/health",
    responses={
        200: {"description": "every check passed"},
        503: {"description": "a check failed: `reasons` says which and why"},
    },
)
async def get_health(app: AppDep, scope: ScopeDep) -> JSONResponse:
    """Is the store reachable, does a live worker serve every queue with due jobs, and are the
    schedules on time? 200 when all are, else 503 with the reasons. `warnings` name what works
    but should be fixed (a worker's clock more than a second off the store's); they leave the
    status alone."""
    scope.require_admin("the fleet's health")
    found = await health.check_async(app)
    body: dict[str, Any] = {
        "ok": found.ok,
        "reasons": found.reasons,
        "warnings": found.warnings,
        "checks": [
            {"name": c.name, "ok": c.ok, "reason": c.reason, "warning": c.warning}
            for c in found.checks
        ],
    }
    code = status.HTTP_200_OK if found.ok else status.HTTP_503_SERVICE_UNAVAILABLE
    return JSONResponse(body, status_code=code)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def get_metrics(app: AppDep, scope: ScopeDep) -> Response:
    """Counters, histograms and gauges of the whole fleet in Prometheus text format, read from
    the store: right whatever number of worker processes there are."""
    scope.require_admin("the metrics")
    body = await asyncio.to_thread(metrics.render, app)
    return Response(body, media_type=metrics.CONTENT_TYPE)
