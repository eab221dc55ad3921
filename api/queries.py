"""Reads: the event document from Redis, or from PostgreSQL when Redis misses or is down.

The projector stores the document as the API's JSON (`doc`) beside the owner (`userId`) in
one hash, so the hot read is one HMGET and the bytes go out as they are: no parsing, no
model validation, no serialising (the pydantic models stay for the OpenAPI contract).
"Down" is a refused or broken connection, or no reply within `api_redis_timeout_seconds`;
a reply that is merely late is waited for, so load never turns into a fallback storm.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from prometheus_client import Counter
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis
from redis.exceptions import RedisError

from sinks.documents import objective_label
from sinks.redis import draft_key, job_key

__all__ = ["EventQueries"]

FALLBACKS = Counter("eventpipe_api_read_fallbacks_total",
                    "reads served from PostgreSQL instead of Redis", ["reason"])
_MISSED, _DOWN = FALLBACKS.labels("miss"), FALLBACKS.labels("redis_down")
# Waits for the projector's next announcement (OutcomeWaiter.next_batch); bounded per round,
# since announcements stop while the listener reconnects.
NextBatch = Callable[[float], Awaitable[None]]
_ROUND_SECONDS = 0.25


def _iso(ts: Any) -> str | None:
    return None if ts is None else ts.isoformat(timespec="milliseconds") + "+00:00"


class EventQueries:
    def __init__(self, redis: Redis, raw: Redis, pool: AsyncConnectionPool,
                 next_batch: NextBatch) -> None:
        self.redis = redis  # replies decoded to str
        self.raw = raw  # replies as bytes: the document goes out as stored
        self.pool = pool
        self.next_batch = next_batch

    async def _draft(self, event_id: str, field: str) -> tuple[bytes | None, bytes | None]:
        """The stored document and one more field of the draft's hash; Nones when Redis
        has no such draft or is down."""
        try:
            doc, other = await self.raw.hmget(draft_key(event_id), ["doc", field])
        except (RedisError, OSError):
            _DOWN.inc()
            return None, None
        return doc, other

    async def event_json(self, event_id: str, user_id: str) -> bytes | None:
        """The event's JSON as the API answers it, or None when there is no such event or
        it is another user's."""
        doc, owner = await self._draft(event_id, "userId")
        if doc is not None and owner is not None:
            return doc if owner.decode() == user_id else None
        _MISSED.inc()
        found = await self._event_from_postgres(event_id)
        if found is None or found[0]["userId"] != user_id:
            return None
        return orjson.dumps(found[0])

    async def event(self, event_id: str) -> tuple[dict[str, Any], int] | None:
        """(document, version), or None when there is no such event."""
        doc, version = await self._draft(event_id, "version")
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

    async def job(self, job_id: str) -> dict[str, Any] | None:
        """The job's status hash (Redis), or its row (PostgreSQL)."""
        try:
            found = await self.redis.hgetall(job_key(job_id))
        except (RedisError, OSError):
            _DOWN.inc()
            found = {}
        if found:
            return {"jobId": job_id, "jobType": found["jobType"], "status": found["status"],
                    "progress": int(found["progress"]), "eventId": found["eventId"],
                    "userId": found.get("userId"), "error": found.get("error")}
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
            await cur.execute("SELECT * FROM events WHERE event_id = %s", (event_id,))
            e = await cur.fetchone()
            if e is None:
                return None
            await cur.execute(
                "SELECT * FROM ai_recommendations WHERE event_id = %s ORDER BY position,"
                " recommendation_id", (event_id,))
            recs = await cur.fetchall()
            await cur.execute(
                "SELECT * FROM generated_images WHERE event_id = %s ORDER BY position, image_id",
                (event_id,))
            images = await cur.fetchall()
            await cur.execute(
                "SELECT * FROM jobs WHERE event_id = %s ORDER BY position, created_at",
                (event_id,))
            jobs = await cur.fetchall()
        doc = {
            "eventId": str(e["event_id"]),
            "userId": str(e["user_id"]),
            "storeId": str(e["store_id"]),
            "status": e["status"],
            "objective": objective_label(e["objective"]),
            "storeName": e["store_name"],
            "industry": e["industry"],
            "address": e["address"],
            "eventName": e["event_name"],
            "description": e["description"],
            "startDate": e["start_date"].isoformat() if e["start_date"] else None,
            "endDate": e["end_date"].isoformat() if e["end_date"] else None,
            "channels": json.loads(e["channels"] or "[]"),
            "recommendations": [
                {"recommendationId": str(r["recommendation_id"]), "title": r["event_name"],
                 "prize": r["prize"], "method": r["method"], "cost": r["cost"], "roi": r["roi"],
                 "promotionType": r["promotion_type"], "targetAudience": r["target_audience"],
                 "description": r["description"], "isSelected": r["is_selected"]}
                for r in recs
            ],
            "images": [
                {"imageId": str(i["image_id"]), "imageUrl": i["image_url"], "style": i["style"],
                 "platform": i["platform"], "isSelected": i["is_selected"],
                 "jobId": _str(i["job_id"])}
                for i in images
            ],
            "trendAnalysis": e["trend_analysis"],
            "selectedRecommendationId": _str(e["selected_recommendation_id"]),
            "selectedImageId": _str(e["selected_image_id"]),
            "selectedImageUrl": e["selected_image_url"],
            "jobs": [
                {"jobId": str(j["job_id"]), "jobType": j["job_type"], "status": j["status"],
                 "progress": j["progress"], "error": j["error_message"]}
                for j in jobs
            ],
            "distributionResults": e["distribution_results"],
            "createdAt": _iso(e["created_at"]),
            "updatedAt": _iso(e["updated_at"]),
        }
        return doc, int(e["version"])


def _str(value: Any) -> str | None:
    return None if value is None else str(value)
