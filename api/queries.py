"""Reads: the event document from Redis, or from PostgreSQL when Redis misses or is down.

The projector stores the document as the API's JSON (`doc`) beside the owner (`userId`) in
one hash, so the hot read is one HMGET and the bytes go out as they are: no parsing, no
model validation, no serialising (the pydantic models stay for the OpenAPI contract).
"Down" is a refused or broken connection, or no reply within `api_redis_timeout_seconds`;
a reply that is merely late is waited for, so load never turns into a fallback storm.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import orjson
from prometheus_client import Counter
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.redis_reader import RedisReader
from sinks.documents import event_document, objective_label
from sinks.postgres import read_state
from sinks.redis import draft_key, job_key

__all__ = ["EventQueries", "mark_redis_failed", "redis_failed"]

FALLBACKS = Counter("eventpipe_api_read_fallbacks_total",
                    "reads served from PostgreSQL instead of Redis", ["reason"])
_MISSED, _DOWN = FALLBACKS.labels("miss"), FALLBACKS.labels("redis_down")
# Waits for the projector's next announcement (OutcomeWaiter.next_batch); bounded per round,
# since announcements stop while the listener reconnects.
NextBatch = Callable[[float], Awaitable[None]]
_ROUND_SECONDS = 0.25
_JOB_FIELDS = ("jobType", "status", "progress", "eventId", "userId", "error")


# Set in a request's ASGI scope by the fast path (api/fast_reads.py) when Redis failed it:
# the FastAPI route it hands the request to then goes to PostgreSQL at once, rather than
# wait for a hung Redis a second time.
_REDIS_FAILED = "eventpipe.redis_failed"


def mark_redis_failed(scope: MutableMapping[str, Any]) -> None:
    scope[_REDIS_FAILED] = True


def redis_failed(scope: Mapping[str, Any]) -> bool:
    return _REDIS_FAILED in scope


def _iso(ts: Any) -> str | None:
    return None if ts is None else ts.isoformat(timespec="milliseconds") + "+00:00"


class EventQueries:
    def __init__(self, reader: RedisReader | Redis, pool: AsyncConnectionPool,
                 next_batch: NextBatch) -> None:
        # Replies as bytes (the document goes out as stored): the lean reader, or redis-py
        # without decoding where the reader does not go (TLS, a unix socket).
        self.reader = reader
        self.pool = pool
        self.next_batch = next_batch

    async def cached_draft(self, event_id: str, field: str) -> tuple[bytes | None, bytes | None]:
        """The stored document and one more field of the draft's hash, from Redis alone;
        Nones when Redis has no such draft. Raises RedisError or OSError when it is down."""
        doc, other = await self.reader.execute_command("HMGET", draft_key(event_id), "doc",
                                                        field)
        return doc, other

    async def _draft(self, event_id: str, field: str,
                     use_redis: bool) -> tuple[bytes | None, bytes | None]:
        """As `cached_draft`, with Nones when Redis is down too (or was found down by this
        request already: `use_redis` False, so a hung Redis is not waited for twice)."""
        if use_redis:
            try:
                return await self.cached_draft(event_id, field)
            except (RedisError, OSError):
                pass
        _DOWN.inc()
        return None, None

    async def event_json(self, event_id: str, user_id: str,
                         use_redis: bool = True) -> bytes | None:
        """The event's JSON as the API answers it, or None when there is no such event or
        it is another user's."""
        doc, owner = await self._draft(event_id, "userId", use_redis)
        if doc is not None and owner is not None:
            return doc if owner.decode() == user_id else None
        _MISSED.inc()
        found = await self._event_from_postgres(event_id)
        if found is None or found[0]["userId"] != user_id:
            return None
        return orjson.dumps(found[0])

    async def event(self, event_id: str,
                    use_redis: bool = True) -> tuple[dict[str, Any], int] | None:
        """(document, version), or None when there is no such event."""
        doc, version = await self._draft(event_id, "version", use_redis)
        if doc is not None and version is not None:
            return orjson.loads(doc), int(version)
        _MISSED.inc()
        return await self._event_from_postgres(event_id)

    async def event_at_least(self, event_id: str, version: int,
                             wait_seconds: float) -> dict[str, Any] | None:
        """Read-your-writes: the event once the projection has reached `version`, or None
        if it has not within the wait. The projector announces each batch after its Redis
        write, so after an announced outcome the first read finds the state; otherwise
        (the outcome was read from PostgreSQL, Redis not written yet) the next
        announcement is what to wait for, not a poll."""
        deadline = time.monotonic() + wait_seconds
        while True:
            found = await self.event(event_id)
            if found is not None and found[1] >= version:
                return found[0]
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            await self.next_batch(min(left, _ROUND_SECONDS))

    async def event_gone(self, event_id: str, wait_seconds: float) -> bool:
        """Read-your-writes for a discard: True once the projection no longer has it."""
        deadline = time.monotonic() + wait_seconds
        while await self.event(event_id) is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await self.next_batch(min(left, _ROUND_SECONDS))
        return True

    async def events_of(self, user_id: str, status: str | None, page: int,
                        size: int) -> tuple[list[dict[str, Any]], int]:
        """One page of the user's events, newest first, and how many there are in all."""
        where, params = "user_id = %s", [user_id]
        if status:
            where += " AND status = %s"
            params.append(status)
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(f"SELECT count(*) AS n FROM events WHERE {where}", params)
            total = (await cur.fetchone())["n"]
            await cur.execute(
                "SELECT event_id, status, objective, event_name, store_name, start_date,"
                f" end_date, created_at, updated_at FROM events WHERE {where}"
                " ORDER BY created_at DESC, event_id LIMIT %s OFFSET %s",
                [*params, size, page * size])
            rows = await cur.fetchall()
        return [{
            "eventId": str(r["event_id"]), "status": r["status"],
            "objective": objective_label(r["objective"]), "eventName": r["event_name"],
            "storeName": r["store_name"],
            "startDate": r["start_date"].isoformat() if r["start_date"] else None,
            "endDate": r["end_date"].isoformat() if r["end_date"] else None,
            "createdAt": _iso(r["created_at"]), "updatedAt": _iso(r["updated_at"]),
        } for r in rows], total

    async def cached_job_body(self, job_id: str) -> tuple[bytes | None, bytes | None]:
        """The job's status body as the API answers it and its owner, from Redis alone;
        Nones when Redis has no such job. Raises RedisError or OSError when it is down."""
        body, owner = await self.reader.execute_command("HMGET", job_key(job_id), "doc",
                                                         "userId")
        return body, owner

    async def cached_job(self, job_id: str) -> dict[str, Any] | None:
        """The job's status hash from Redis alone, None when Redis has no such job. Raises
        RedisError or OSError when it is down."""
        values = await self.reader.execute_command("HMGET", job_key(job_id), *_JOB_FIELDS)
        if values[0] is None:
            return None
        job_type, status, progress, event_id, user_id, error = (
            None if v is None else v.decode() for v in values)
        return {"jobId": job_id, "jobType": job_type, "status": status,
                "progress": int(progress), "eventId": event_id, "userId": user_id,
                "error": error}

    async def job(self, job_id: str, use_redis: bool = True) -> dict[str, Any] | None:
        """The job's status hash (Redis), or its row (PostgreSQL)."""
        found = None
        if use_redis:
            try:
                found = await self.cached_job(job_id)
            except (RedisError, OSError):
                _DOWN.inc()
        else:
            _DOWN.inc()
        if found is not None:
            return found
        _MISSED.inc()
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute("SELECT * FROM jobs WHERE job_id = %s", (job_id,))
            row = await cur.fetchone()
        if row is None:
            return None
        return {"jobId": job_id, "jobType": row["job_type"], "status": row["status"],
                "progress": row["progress"], "eventId": str(row["event_id"]),
                "userId": _str(row["user_id"]), "error": row["error_message"]}

    async def _event_from_postgres(self, event_id: str) -> tuple[dict[str, Any], int] | None:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            state = await read_state(cur, event_id)
        return None if state is None else (event_document(state), state["version"])


def _str(value: Any) -> str | None:
    return None if value is None else str(value)
