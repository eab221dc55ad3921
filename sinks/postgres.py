"""PostgreSQL projection: one transaction per batch, upserts guarded by the state version.
The rows are a state's columns, so `read_state` turns them back into the state they came
from, and the API's PostgreSQL read path shows the same document as Redis."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncCursor
from psycopg.rows import DictRow
from psycopg_pool import AsyncConnectionPool

__all__ = ["PostgresSink", "read_state"]

_EVENT_COLUMNS = (
    "event_id", "user_id", "store_id", "event_name", "description", "objective",
    "start_date", "end_date", "status", "selected_image_id", "selected_image_url", "channels",
    "created_at", "updated_at", "store_name", "industry", "address",
    "selected_recommendation_id", "distribution_results", "published_at", "ended_at", "version",
    "trend_analysis",
)
_UPSERT_EVENT = (
    f"INSERT INTO events ({', '.join(_EVENT_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(_EVENT_COLUMNS))}) "
    "ON CONFLICT (event_id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _EVENT_COLUMNS[1:])
    # Never go backwards: a replayed or late older state leaves the newer row alone.
    + " WHERE events.version < EXCLUDED.version RETURNING event_id"
)
# Children of the events whose row was just written are replaced as a set.
_DELETE_RECOMMENDATIONS = "DELETE FROM ai_recommendations WHERE event_id = ANY(%s::uuid[])"
_DELETE_IMAGES = "DELETE FROM generated_images WHERE event_id = ANY(%s::uuid[])"
_INSERT_RECOMMENDATION = (
    "INSERT INTO ai_recommendations (recommendation_id, event_id, event_name, description,"
    " promotion_type, target_audience, is_selected, created_at, updated_at, prize, method,"
    " cost, roi, position) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_INSERT_IMAGE = (
    "INSERT INTO generated_images (image_id, event_id, image_url, style, platform,"
    " is_selected, created_at, updated_at, job_id, position)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_UPSERT_JOB = (
    "INSERT INTO jobs (job_id, event_id, job_type, status, progress, error_message,"
    " completed_at, created_at, updated_at, version, user_id, position) VALUES (%s, %s, %s,"
    " %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (job_id) DO UPDATE SET status = EXCLUDED.status,"
    " progress = EXCLUDED.progress, error_message = EXCLUDED.error_message,"
    " completed_at = EXCLUDED.completed_at, updated_at = EXCLUDED.updated_at,"
    " version = EXCLUDED.version WHERE jobs.version < EXCLUDED.version"
)
_DELETE_EVENTS = "DELETE FROM events WHERE event_id = ANY(%s::uuid[])"
_INSERT_OUTCOME = (
    "INSERT INTO command_outcomes (command_id, event_id, user_id, command_type, status, code,"
    " message, details, event_version, decided_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (command_id) DO NOTHING"
)


_EPOCH = datetime(1970, 1, 1)
_MS = timedelta(milliseconds=1)


def _ts(epoch_ms: int | None) -> datetime | None:
    # TIMESTAMP columns hold UTC without a zone, as the ERD declares them.
    if epoch_ms is None:
        return None
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).replace(tzinfo=None)


def _ms(ts: datetime | None) -> int | None:
    """`_ts` undone, exactly (integer arithmetic, no float rounding)."""
    return None if ts is None else (ts - _EPOCH) // _MS


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _event_row(s: dict[str, Any]) -> tuple[Any, ...]:
    return (
        s["eventId"], s["userId"], s["storeId"], s.get("eventName"), s.get("description"),
        s["objective"], s.get("startDate"), s.get("endDate"), s["status"],
        s.get("selectedImageId"), s.get("selectedImageUrl"),
        json.dumps(s.get("channels") or []), _ts(s["createdAt"]), _ts(s["updatedAt"]),
        s["storeName"], s["industry"], s["address"], s.get("selectedRecommendationId"),
        json.dumps(s.get("distributionResults") or [], ensure_ascii=False),
        _ts(s.get("publishedAt")), _ts(s.get("endedAt")), s["version"],
        json.dumps(s["trendAnalysis"], ensure_ascii=False) if s.get("trendAnalysis") else None,
    )


def _recommendation_rows(s: dict[str, Any]) -> list[tuple[Any, ...]]:
    selected = s.get("selectedRecommendationId")
    at = _ts(s["updatedAt"])
    return [(r["recommendationId"], s["eventId"], r["title"], r["description"],
             r["promotionType"], r["targetAudience"], r["recommendationId"] == selected,
             at, at, r["prize"], r["method"], r["cost"], r["roi"], position)
            for position, r in enumerate(s.get("recommendations") or [])]


def _image_rows(s: dict[str, Any]) -> list[tuple[Any, ...]]:
    selected = s.get("selectedImageId")
    at = _ts(s["updatedAt"])
    return [(i["imageId"], s["eventId"], i["imageUrl"], i["style"], i["platform"],
             i["imageId"] == selected, at, at, i.get("jobId"), position)
            for position, i in enumerate(s.get("images") or [])]


def _job_rows(s: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(j["jobId"], s["eventId"], j["jobType"], j["status"], j["progress"], j["error"],
             _ts(j["completedAt"]), _ts(j["createdAt"]), _ts(j["updatedAt"]), s["version"],
             s["userId"], position)
            for position, j in enumerate((s.get("jobs") or {}).values())]


def _outcome_row(o: dict[str, Any]) -> tuple[Any, ...]:
    return (
        o["commandId"], o["eventId"], o["userId"], o["commandType"], o["status"], o["code"],
        o["message"], json.dumps(o["details"], ensure_ascii=False), o["eventVersion"],
        _ts(o["decidedAt"]),
    )


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


class PostgresSink:
    def __init__(self, database_url: str, pool_size: int = 4) -> None:
        self.pool = AsyncConnectionPool(database_url, min_size=1, max_size=pool_size, open=False,
                                        check=AsyncConnectionPool.check_connection)

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
        """Everything of one batch in one transaction: all of it is durable, or none."""
        async with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            if upserts:
                written = await self._upsert_events(cur, upserts)
                fresh = [s for s in upserts if s["eventId"] in written]
                if fresh:
                    ids = [s["eventId"] for s in fresh]
                    await cur.execute(_DELETE_RECOMMENDATIONS, (ids,))
                    await cur.execute(_DELETE_IMAGES, (ids,))
                    for statement, rows_of in ((_INSERT_RECOMMENDATION, _recommendation_rows),
                                               (_INSERT_IMAGE, _image_rows),
                                               (_UPSERT_JOB, _job_rows)):
                        rows = [row for s in fresh for row in rows_of(s)]
                        if rows:
                            await cur.executemany(statement, rows)
            if deletes:
                await cur.execute(_DELETE_EVENTS, (list(deletes),))
            if outcomes:
                await cur.executemany(_INSERT_OUTCOME, [_outcome_row(o) for o in outcomes])

    async def write_jobs(self, states: Sequence[dict[str, Any]]) -> None:
        """Only the jobs of these states (a discarded event's jobs outlive it)."""
        rows = [row for s in states for row in _job_rows(s)]
        if rows:
            async with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                await cur.executemany(_UPSERT_JOB, rows)

    @staticmethod
    async def _upsert_events(cur: Any, states: Sequence[dict[str, Any]]) -> set[str]:
        """Upsert the rows; returns the eventIds actually written (newer than stored)."""
        await cur.executemany(_UPSERT_EVENT, [_event_row(s) for s in states], returning=True)
        written: set[str] = set()
        while True:
            written.update(str(row[0]) for row in await cur.fetchall())
            if not cur.nextset():
                return written
