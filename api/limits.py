"""Limits at the door: the body size (413) and the requests in flight (429).

uvicorn has no body limit of its own; a client could otherwise make the API buffer any
amount. A declared Content-Length is checked before the app runs; a body without one
(chunked) is read here, up to the limit, and handed on as one message.

Past its capacity a process that admits every request only queues them: each waits longer,
timeouts fire, and stores look down when they are merely late. `InFlightLimit` answers a
request 429 with Retry-After at once, for the cost of two ASGI messages, when its kind has
its budget in flight, or when the event loop runs late: requests the loop has not reached
yet are invisible to any counter (they wait in socket buffers and the loop's ready queue),
but their wait shows as the lateness of a callback due every few milliseconds.
"""

from __future__ import annotations

import asyncio

import orjson
from fastapi.responses import JSONResponse
from prometheus_client import Counter, Gauge
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["PAYLOAD_TOO_LARGE", "TOO_MANY_REQUESTS", "BodyLimit", "InFlightLimit", "LoopLag"]

PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
TOO_MANY_REQUESTS = "TOO_MANY_REQUESTS"

IN_FLIGHT = Gauge("eventpipe_api_in_flight", "requests being served", ["kind"])
SHED = Counter("eventpipe_api_shed_total", "requests answered 429 (over the in-flight limit)",
               ["kind"])
_NEVER_SHED = ("/health", "/metrics")
_READS = frozenset({"GET", "HEAD"})
_LIST = frozenset({"/api/events", "/api/events/"})  # the read that always goes to PostgreSQL
_SHED_BODY = orjson.dumps({"code": TOO_MANY_REQUESTS,
                           "message": "the API is at capacity; retry shortly"})
_SHED_START: Message = {
    "type": "http.response.start", "status": 429,
    "headers": [(b"content-type", b"application/json"), (b"retry-after", b"1"),
                (b"content-length", str(len(_SHED_BODY)).encode())],
}


class LoopLag:
    """How late the event loop is: a callback due every `TICK` seconds, how late its last
    two runs were (both, so that one long step, e.g. the first /openapi.json, is not taken
    for a queue), or, while it has not run yet, how far past due it is."""

    TICK = 0.005

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due = 0.0
        self._last = self._before = 0.0

    def _tick(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        self._before, self._last = self._last, now - self._due
        self._due = now + self.TICK
        self._loop.call_at(self._due, self._tick)

    def seconds(self) -> float:
        if self._loop is None:  # started on the first request, in the server's loop
            self._loop = asyncio.get_running_loop()
            self._due = self._loop.time()
            self._loop.call_soon(self._tick)
            return 0.0
        return max(min(self._last, self._before), self._loop.time() - self._due)


class InFlightLimit:
    """At most `lists` reads of the event list, `reads` other GET/HEAD and `commands` other
    requests at once, and none while the event loop runs more than `max_lag` seconds late;
    the rest 429."""

    def __init__(self, app: ASGIApp, reads: int, commands: int, lists: int = 0,
                 max_lag: float = 0.0) -> None:
        self.app = app
        self.max_lag = max_lag
        self.lag = LoopLag()
        self.limits = {"read": reads, "list": lists, "command": commands}
        self.in_flight = dict.fromkeys(self.limits, 0)
        self.gauges = {kind: IN_FLIGHT.labels(kind) for kind in self.limits}
        self.shed = {kind: SHED.labels(kind) for kind in self.limits}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(_NEVER_SHED):
            await self.app(scope, receive, send)
            return
        if scope["method"] in _READS:
            kind = "list" if scope["path"] in _LIST else "read"
        else:
            kind = "command"
        limit = self.limits[kind]
        if (limit and self.in_flight[kind] >= limit) or (
                self.max_lag and self.lag.seconds() > self.max_lag):
            self.shed[kind].inc()
            await send(_SHED_START)
            await send({"type": "http.response.body", "body": _SHED_BODY})
            return
        self.in_flight[kind] += 1
        self.gauges[kind].inc()
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight[kind] -= 1
            self.gauges[kind].dec()


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {"code": PAYLOAD_TOO_LARGE,
             "message": f"the request body is larger than {self.max_bytes} bytes"},
            status_code=413, headers={"Connection": "close"})
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if b"transfer-encoding" not in headers:  # no body at all
            await self.app(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)
