"""Request counts and latency per route template and status, for the API's /metrics; and
the phases of a command (produce, outcome, read), also told to the client in a
`Server-Timing` header so a load generator can put each request's hops side by side."""

from __future__ import annotations

import time
from contextvars import ContextVar

from fastapi import FastAPI
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RequestMetrics", "install_request_metrics", "record_phase", "route_metrics"]

REQUESTS = Counter("eventpipe_api_requests_total", "HTTP requests",
                   ["method", "route", "status"])
LATENCY = Histogram("eventpipe_api_request_seconds", "HTTP request latency",
                    ["method", "route"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))

PHASES = Histogram("eventpipe_api_command_phase_seconds",
                   "a command's time in the API: produce (to acks=all), outcome (acks to the "
                   "projector's announcement), read (outcome and projection)", ["phase"],
                   buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
_phases: ContextVar[list[tuple[str, float]] | None] = ContextVar("phases", default=None)


def record_phase(name: str, seconds: float) -> None:
    PHASES.labels(name).observe(seconds)
    phases = _phases.get()
    if phases is not None:
        phases.append((name, seconds))


def _server_timing(phases: list[tuple[str, float]]) -> bytes:
    return ", ".join(f"{name};dur={seconds * 1000:.2f}" for name, seconds in phases).encode()


class RequestMetrics:
    """Plain ASGI middleware (Starlette's `BaseHTTPMiddleware` runs each request in a task
    group of its own, a fifth of the API's time at 1,000 requests/s)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before answering

        phases: list[tuple[str, float]] = []
        _phases.set(phases)  # this request's task: the route appends to this list

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if phases:
                    message["headers"] = [*message.get("headers", ()),
                                          (b"server-timing", _server_timing(phases))]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # The route's template, not the raw path: one series per endpoint, not per id.
            route = getattr(scope.get("route"), "path", "unmatched")
            LATENCY.labels(scope["method"], route).observe(time.perf_counter() - started)
            REQUESTS.labels(scope["method"], route, str(status)).inc()


def route_metrics(method: str, route: str, status: int) -> tuple[Counter, Histogram]:
    """The series `RequestMetrics` counts a route's answers in, for a path answered before
    it (api/fast_reads.py): (request count of `status`, latency)."""
    return REQUESTS.labels(method, route, str(status)), LATENCY.labels(method, route)


def install_request_metrics(app: FastAPI) -> None:
    app.add_middleware(RequestMetrics)
