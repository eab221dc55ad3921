"""The two hot reads answered in raw ASGI, in front of FastAPI.

GET /api/events/{eventId} and GET /api/events/jobs/{jobId}/status are most of the API's
traffic, and FastAPI's per-request machinery (dependency solving, routing, the response
classes, the middlewares) cost more than the read itself (bench/ANALYSIS.md). Here the
common case - a valid token, the projection in Redis, the caller's own - is answered 200
at once. Every other case goes on to the FastAPI routes, which stay declared (OpenAPI,
/docs) and answer it as they always did: no or a bad token (401), a Redis miss
(PostgreSQL), Redis down (PostgreSQL, without asking a hung Redis a second time), another
user's id (404), an id FastAPI would have to normalise, a request with a body (BodyLimit).
So this path only ever answers 200, with the route's body and headers.

It runs inside InFlightLimit (shedding applies to it) and counts its answers in the
route's request metrics (docs/decisions/0012).
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Iterable

import jwt
from prometheus_client import Counter, Histogram
from redis.exceptions import RedisError
from starlette.datastructures import State
from starlette.types import ASGIApp, Receive, Scope, Send

from api.auth import verified_user
from api.metrics import route_metrics
from api.queries import EventQueries, mark_redis_failed
from eventpipe.settings import get_settings

__all__ = ["FastReads"]

# Only the form str(UUID) writes: any other spelling FastAPI normalises, so it goes there.
_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_EVENT = re.compile(f"/api/events/({_UUID})")
_JOB = re.compile(f"/api/events/jobs/({_UUID})/status")
_CONTENT_TYPE = (b"content-type", b"application/json")

# (queries, id, user) -> the 200 body, or None: the FastAPI route's to answer.
Read = Callable[[EventQueries, str, str], Awaitable[bytes | None]]


async def _event(queries: EventQueries, event_id: str, user: str) -> bytes | None:
    doc, owner = await queries.cached_draft(event_id, "userId")
    if doc is None or owner is None or owner.decode() != user:
        return None
    return doc  # the projection's JSON as stored, as the route sends it


async def _job(queries: EventQueries, job_id: str, user: str) -> bytes | None:
    body, owner = await queries.cached_job_body(job_id)
    if body is None or owner is None or owner.decode() != user:
        return None  # also a hash written without its body: the route builds it
    return body  # the projection's JSON as stored, as the route would build it


class FastReads:
    """ASGI middleware: the hot GETs' common case, everything else to `app`."""

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        self.state = state  # the FastAPI app's: its lifespan opens `services`
        self.settings = get_settings()  # as the routes' token check reads it
        self.routes: list[tuple[re.Pattern[str], Read, tuple[Counter, Histogram]]] = [
            (_EVENT, _event, route_metrics("GET", "/api/events/{eventId}", 200)),
            (_JOB, _job, route_metrics("GET", "/api/events/jobs/{jobId}/status", 200)),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            for pattern, read, (count, latency) in self.routes:
                found = pattern.fullmatch(scope["path"])
                if found is None:
                    continue
                started = time.perf_counter()
                user = self._caller(scope["headers"])
                if user is None:
                    break
                try:
                    body = await read(self.state.services.queries, found.group(1), user)
                except (RedisError, OSError):
                    mark_redis_failed(scope)
                    break
                if body is None:
                    break
                await send({"type": "http.response.start", "status": 200, "headers": [
                    (b"content-length", str(len(body)).encode()), _CONTENT_TYPE]})
                await send({"type": "http.response.body", "body": body})
                latency.observe(time.perf_counter() - started)
                count.inc()
                return
        await self.app(scope, receive, send)

    def _caller(self, headers: Iterable[tuple[bytes, bytes]]) -> str | None:
        """The user of a valid bearer token (read as FastAPI's HTTPBearer reads it: the
        first Authorization header), or None: no token, a bad one, or a request body."""
        authorization = None
        for name, value in headers:  # names come lower-cased from uvicorn
            if name == b"authorization":
                if authorization is None:
                    authorization = value
            elif name == b"transfer-encoding" or (name == b"content-length"
                                                  and value != b"0"):
                return None
        if authorization is None:
            return None
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        try:
            return verified_user(token, self.settings)
        except (jwt.PyJWTError, ValueError):
            return None
