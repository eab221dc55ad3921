"""PostgreSQL projection: one statement per batch (the `project_batch` function of migrations
0006 and 0007), upserts guarded by the state version, child rows written only when changed.
The rows are a state's columns, so `read_state` turns them back into the state they came
from, and the API's PostgreSQL read path shows the same document as Redis."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
from psycopg import AsyncCursor
from psycopg.rows import DictRow
from psycopg.types.json import Json
from psycopg_pool import AsyncConnectionPool

__all__ = ["PostgresSink", "read_state"]

# The rows are made in the database from the states as JSON (migration 0006_project_batch).
_PROJECT_BATCH = "SELECT project_batch(%s, %s, %s, %s, %s::uuid[], %s::uuid[], %s)"
_PROJECT_JOBS = "SELECT project_jobs(%s)"


_EPOCH = datetime(1970, 1, 1)
_MS = timedelta(milliseconds=1)


def _ms(ts: datetime | None) -> int | None:
    """A TIMESTAMP column (UTC, no zone) as epoch milliseconds, exactly (integer arithmetic,
    as `epoch_ms_to_timestamp` wrote it)."""
    return None if ts is None else (ts - _EPOCH) // _MS


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


async def read_state(cur: AsyncCursor[DictRow], event_id: str) -> dict[str, Any] | None:
    """The event's state as its rows hold it (a `dict_row` cursor), or None when there is
    no such row. Only what the projection keeps: not the commandIds the rules remember."""
    await cur.execute("SELECT * FROM events WHERE event_id = %s", (event_id,))
    e = await cur.fetchone()
    if e is None:
        return None
    await cur.execute("SELECT * FROM ai_recommendations WHERE event_id = %s"
                      " ORDER BY position, recommendation_id", (event_id,))
    recommendations = await cur.fetchall()
    await cur.execute("SELECT * FROM generated_images WHERE event_id = %s"
                      " ORDER BY position, image_id", (event_id,))
    images = await cur.fetchall()
    await cur.execute("SELECT * FROM jobs WHERE event_id = %s ORDER BY position, created_at",
                      (event_id,))
    jobs = await cur.fetchall()
    return {
        "eventId": str(e["event_id"]), "userId": str(e["user_id"]),
        "storeId": str(e["store_id"]), "status": e["status"], "objective": e["objective"],
        "storeName": e["store_name"], "industry": e["industry"], "address": e["address"],
        "eventName": e["event_name"], "description": e["description"],
        "startDate": e["start_date"].isoformat() if e["start_date"] else None,
        "endDate": e["end_date"].isoformat() if e["end_date"] else None,
        "channels": json.loads(e["channels"] or "[]"),
        "recommendations": [
            {"recommendationId": str(r["recommendation_id"]), "title": r["event_name"],
             "prize": r["prize"], "method": r["method"], "cost": r["cost"], "roi": r["roi"],
             "promotionType": r["promotion_type"], "targetAudience": r["target_audience"],
             "description": r["description"]}
            for r in recommendations],
        "images": [
            {"imageId": str(i["image_id"]), "imageUrl": i["image_url"], "style": i["style"],
             "platform": i["platform"], "jobId": _str(i["job_id"])}
            for i in images],
        "trendAnalysis": e["trend_analysis"],
        "selectedRecommendationId": _str(e["selected_recommendation_id"]),
        "selectedImageId": _str(e["selected_image_id"]),
        "selectedImageUrl": e["selected_image_url"],
        "jobs": {str(j["job_id"]): {
            "jobId": str(j["job_id"]), "jobType": j["job_type"], "status": j["status"],
            "progress": j["progress"], "error": j["error_message"],
            "createdAt": _ms(j["created_at"]), "updatedAt": _ms(j["updated_at"]),
            "completedAt": _ms(j["completed_at"])} for j in jobs},
        "distributionResults": e["distribution_results"],
        "createdAt": _ms(e["created_at"]), "updatedAt": _ms(e["updated_at"]),
        "publishedAt": _ms(e["published_at"]), "endedAt": _ms(e["ended_at"]),
        "version": int(e["version"]),
    }


def _json(value: Any) -> Json:
    # psycopg's JSON parameter (typed, so the SQL needs no cast), written by orjson.
    return Json(value, dumps=orjson.dumps)


# What `project_batch` reads of a state for its `events` row (its children come apart).
_EVENT_FIELDS = (
    "eventId", "userId", "storeId", "eventName", "description", "objective", "startDate",
    "endDate", "status", "selectedImageId", "selectedImageUrl", "channels", "createdAt",
    "updatedAt", "storeName", "industry", "address", "selectedRecommendationId",
    "distributionResults", "publishedAt", "endedAt", "version", "trendAnalysis")


def _event_row(state: dict[str, Any]) -> dict[str, Any]:
    return {name: state.get(name) for name in _EVENT_FIELDS}


def _children(states: Sequence[dict[str, Any]]) -> tuple[list[Any], list[Any], list[Any]]:
    """The states' recommendations, images and jobs as rows (objects named as the state
    names them, with their event, selection and place in its list)."""
    recommendations: list[dict[str, Any]] = []
    images: list[dict[str, Any]] = []
    jobs: list[dict[str, Any]] = []
    for s in states:
        event_id, at = s["eventId"], s["updatedAt"]
        chosen = s.get("selectedRecommendationId")
        recommendations += [{**r, "eventId": event_id, "updatedAt": at, "position": n,
                             "isSelected": r["recommendationId"] == chosen}
                            for n, r in enumerate(s.get("recommendations") or [])]
        chosen = s.get("selectedImageId")
        images += [{**i, "eventId": event_id, "updatedAt": at, "position": n,
                    "isSelected": i["imageId"] == chosen}
                   for n, i in enumerate(s.get("images") or [])]
        jobs += [{**j, "eventId": event_id, "userId": s["userId"], "version": s["version"],
                  "position": n}
                 for n, j in enumerate((s.get("jobs") or {}).values())]
    return recommendations, images, jobs


class PostgresSink:
    def __init__(self, database_url: str, pool_size: int = 4) -> None:
        # Autocommit: a batch is one statement (one function call), atomic on its own.
        # Connections are not checked out with a check (a round trip per batch): one that
        # broke with a PostgreSQL restart fails its write, the pool drops it, and the
        # projector's retry takes another.
        self.pool = AsyncConnectionPool(database_url, min_size=1, max_size=pool_size, open=False,
                                        kwargs={"autocommit": True})

    async def start(self) -> None:
        await self.pool.open(wait=False)

    async def stop(self) -> None:
        await self.pool.close()

    async def write(
        self,
        upserts: Sequence[dict[str, Any]],
        deletes: Sequence[str],
        outcomes: Sequence[dict[str, Any]],
    ) -> None:
        """Everything of one batch in one statement: all of it is durable, or none."""
        recommendations, images, jobs = _children(upserts)
        children = [r["recommendationId"] for r in recommendations] + [
            i["imageId"] for i in images]
        async with self.pool.connection() as conn:
            await conn.execute(_PROJECT_BATCH, (
                _json([_event_row(s) for s in upserts]), _json(recommendations),
                _json(images), _json(jobs), children, list(deletes), _json(outcomes)))

    async def write_jobs(self, states: Sequence[dict[str, Any]]) -> None:
        """Only the jobs of these states (a discarded event's jobs outlive it)."""
        jobs = _children(states)[2]
        if jobs:
            async with self.pool.connection() as conn:
                await conn.execute(_PROJECT_JOBS, (_json(jobs),))
