"""Redis projection: the hot keys the API reads (drafts, jobs, outcomes), written in one
pipeline per batch.

Hashes are replaced only by a newer version (a Lua check-and-set, so the guard and the write
are one step); every key gets its TTL again on each write.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from redis.asyncio import Redis

from eventpipe.settings import Settings
from sinks.documents import event_document

__all__ = [
    "OUTCOME_CHANNEL",
    "RedisSink",
    "draft_key",
    "job_key",
    "outcome_key",
    "recommendation_key",
    "session_key",
]

# Pub/sub: the commandIds whose outcomes just landed, space-separated, one message a batch.
OUTCOME_CHANNEL = "eventpipe:outcomes"


def draft_key(event_id: str) -> str:
    return f"event:draft:{event_id}"


def session_key(user_id: str) -> str:
    return f"event:session:{user_id}"


def job_key(job_id: str) -> str:
    return f"job:status:{job_id}"


def recommendation_key(event_id: str) -> str:
    return f"ai:recommendation:{event_id}"


def outcome_key(command_id: str) -> str:
    return f"command:outcome:{command_id}"


# KEYS[1] hash; ARGV[1] guard field, ARGV[2] its new value, ARGV[3] ttl, ARGV[4..] pairs.
_REPLACE_IF_NEWER = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current and tonumber(current) >= tonumber(ARGV[2]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], unpack(ARGV, 4))
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _pairs(mapping: dict[str, Any]) -> list[str]:
    flat: list[str] = []
    for field, value in mapping.items():
        if value is not None:
            text = value if isinstance(value, str) else _json(value)
            flat += [field, text]
    return flat


class RedisSink:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = Redis.from_url(settings.redis_url, decode_responses=True)
        self._replace_if_newer = self.client.register_script(_REPLACE_IF_NEWER)

    async def stop(self) -> None:
        await self.client.aclose()

    async def write(
        self,
        upserts: Sequence[dict[str, Any]],
        deletes: Sequence[dict[str, Any]],
        outcomes: Sequence[dict[str, Any]],
    ) -> None:
        s = self.settings
        pipe = self.client.pipeline(transaction=False)
        for state in upserts:
            doc = event_document(state)
            draft = {
                "eventName": state.get("eventName"),
                "description": state.get("description"),
                "objective": state["objective"],
                "status": state["status"],
                "userId": state["userId"],
                "storeId": state["storeId"],
                "storeName": state["storeName"],
                "doc": _json(doc),
            }
            await self._replace_if_newer(
                keys=[draft_key(state["eventId"])],
                args=["version", state["version"], s.ttl_draft_seconds, *_pairs(draft)],
                client=pipe,
            )
            if state["status"] == "DRAFT":
                session = {"eventId": state["eventId"], "objective": state["objective"],
                           "storeId": state["storeId"]}
                # The user's latest draft: a newer createdAt wins, whatever order we see them.
                await self._replace_if_newer(
                    keys=[session_key(state["userId"])],
                    args=["createdAt", state["createdAt"], s.ttl_session_seconds,
                          *_pairs(session)],
                    client=pipe,
                )
            for job in (state.get("jobs") or {}).values():
                await self._replace_if_newer(
                    keys=[job_key(job["jobId"])],
                    args=["version", state["version"], s.ttl_job_seconds, *_pairs({
                        "jobType": job["jobType"], "status": job["status"],
                        "progress": str(job["progress"]), "eventId": state["eventId"],
                        "userId": state["userId"], "error": job["error"],
                    })],
                    client=pipe,
                )
            if state.get("recommendations"):
                await self._replace_if_newer(
                    keys=[recommendation_key(state["eventId"])],
                    args=["version", state["version"], s.ttl_recommendation_seconds, *_pairs({
                        "trendAnalysis": state.get("trendAnalysis"),
                        "recommendations": doc["recommendations"],
                    })],
                    client=pipe,
                )
        for state in deletes:
            pipe.delete(draft_key(state["eventId"]), recommendation_key(state["eventId"]))
        for o in outcomes:
            key = outcome_key(o["commandId"])
            pipe.hset(key, mapping={
                "eventId": o["eventId"], "userId": o["userId"], "commandType": o["commandType"],
                "status": o["status"], "code": o["code"] or "", "message": o["message"] or "",
                "details": _json(o["details"]),
                "eventVersion": o["eventVersion"],
            })
            pipe.expire(key, s.ttl_outcome_seconds)
        if outcomes:
            pipe.publish(OUTCOME_CHANNEL, " ".join(o["commandId"] for o in outcomes))
        await pipe.execute()
