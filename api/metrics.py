"""Request counts and latency per route template and status, for the API's /metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import Counter, Histogram

__all__ = ["install_request_metrics"]

REQUESTS = Counter("eventpipe_api_requests_total", "HTTP requests",
                   ["method", "route", "status"])
LATENCY = Histogram("eventpipe_api_request_seconds", "HTTP request latency",
                    ["method", "route"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))


def install_request_metrics(app: FastAPI) -> None:
    @app.middleware("http")
    async def measure(request: Request,
                      call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        # The route's template, not the raw path: one series per endpoint, not per event id.
        route = getattr(request.scope.get("route"), "path", "unmatched")
        LATENCY.labels(request.method, route).observe(time.perf_counter() - started)
        REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        return response
