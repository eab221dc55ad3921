"""Reads: the event document from Redis, or from PostgreSQL when Redis misses or is down."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis
from redis.exceptions import RedisError

from sinks.documents import objective_label
from sinks.redis import draft_key

__all__ = ["EventQueries"]


def _iso(ts: Any) -> str | None:
    return None if ts is None else ts.isoformat(timespec="milliseconds") + "+00:00"


class EventQueries:
    def __init__(self, redis: Redis, pool: AsyncConnectionPool) -> None:
        self.redis = redis
        self.pool = pool

    async def event(self, event_id: str) -> tuple[dict[str, Any], int] | None:
        """(document, version), or None when there is no such event."""
        try:
            doc, version = await self.redis.hmget(draft_key(event_id), ["doc", "version"])
        except (RedisError, OSError):
            doc = version = None
        if doc is not None and version is not None:
            return json.loads(doc), int(version)
        return await self._event_from_postgres(event_id)

    async def event_at_least(self, event_id: str, version: int,
                             wait_seconds: float) -> dict[str, Any] | None:
        """Read-your-writes: the event once the projection has reached `version`."""
        deadline = time.monotonic() + wait_seconds
        while True:
            found = await self.event(event_id)
            if found is not None and found[1] >= version:
                return found[0]
            if time.monotonic() >= deadline:
                return found[0] if found else None
            await asyncio.sleep(0.01)

    async def _event_from_postgres(self, event_id: str) -> tuple[dict[str, Any], int] | None:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute("SELECT * FROM events WHERE event_id = %s", (event_id,))
            e = await cur.fetchone()
            if e is None:
                return None
            await cur.execute(
                "SELECT * FROM ai_recommendations WHERE event_id = %s ORDER BY created_at,"
                " recommendation_id", (event_id,))
            recs = await cur.fetchall()
            await cur.execute(
                "SELECT * FROM generated_images WHERE event_id = %s ORDER BY created_at, image_id",
                (event_id,))
            images = await cur.fetchall()
            await cur.execute("SELECT * FROM jobs WHERE event_id = %s ORDER BY created_at",
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
                 "platform": i["platform"], "isSelected": i["is_selected"]}
                for i in images
            ],
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
