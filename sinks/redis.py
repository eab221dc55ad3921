"""Redis projection: the hot keys the API reads (drafts, jobs, outcomes), written in one
pipeline per batch.

Hashes are replaced only by a newer version (a Lua check-and-set, so the guard and the write
are one step); every key gets its TTL again on each write. The batch goes to one script as
JSON, a call per `OPS_PER_CALL` keys, then the outcomes are announced.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from eventpipe.settings import Settings
from sinks.documents import event_document, job_status_body

__all__ = [
    "OUTCOME_CHANNEL",
    "RedisSink",
    "announced_outcomes",
    "draft_key",
    "job_key",
    "outcome_key",
    "recommendation_key",
    "session_key",
]

# Pub/sub: the outcomes that just landed, one message a batch: {commandId: the fields of
# its outcome hash}, so a waiting request needs no read of its outcome.
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


# One call writes many keys (the batch is packed once, as JSON, not argument by argument:
# redis-py packs each argument in Python, which was most of the projector's Redis time).
# KEYS[k] is written by ops[k] of ARGV[1], a JSON array of [op, ttl, field, value, ...]:
# 'R' replaces the hash if its first field (the guard) is newer than the stored one, 'S'
# sets the fields, 'D' deletes the key. Returns how many hashes were written.
_WRITE_BATCH = """
local ops = cjson.decode(ARGV[1])
local written = 0
for k, op in ipairs(ops) do
  local key, kind = KEYS[k], op[1]
  if kind == 'D' then
    redis.call('DEL', key)
  else
    local current = kind == 'R' and redis.call('HGET', key, op[3])
    if not (current and tonumber(current) >= tonumber(op[4])) then
      if kind == 'R' then redis.call('DEL', key) end
      redis.call('HSET', key, unpack(op, 3))
      redis.call('EXPIRE', key, op[2])
      written = written + 1
    end
  end
end
return written
"""
OPS_PER_CALL = 500  # Redis runs a script alone: a few ms at most, then other clients' turn


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _fields(mapping: dict[str, Any]) -> list[str]:
    """A hash's fields as HSET takes them, in strings (None fields are left out)."""
    flat: list[str] = []
    for field, value in mapping.items():
        if value is not None:
            flat += [field, value if isinstance(value, str) else _json(value)]
    return flat


def _outcome_fields(o: dict[str, Any]) -> dict[str, str]:
    """An outcome as its hash `command:outcome:{commandId}` holds it."""
    return {
        "eventId": o["eventId"], "userId": o["userId"], "commandType": o["commandType"],
        "status": o["status"], "code": o["code"] or "", "message": o["message"] or "",
        "details": _json(o["details"]), "eventVersion": str(o["eventVersion"]),
    }


def announced_outcomes(message: str | bytes) -> dict[str, dict[str, str]]:
    """The outcomes of an announcement, by commandId (ValueError: not one)."""
    found = orjson.loads(message)
    if not isinstance(found, dict):
        raise ValueError(f"an announcement is an object, not {type(found).__name__}")
    return found


class RedisSink:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = Redis.from_url(settings.redis_url, decode_responses=True)
        # Called by its digest: a registered script in a pipeline costs a SCRIPT EXISTS
        # round trip on every execute (redis-py checks before each one).
        self._sha = self.client.register_script(_WRITE_BATCH).sha

    async def stop(self) -> None:
        await self.client.aclose()

    async def write(
        self,
        upserts: Sequence[dict[str, Any]],
        deletes: Sequence[dict[str, Any]],
        outcomes: Sequence[dict[str, Any]],
    ) -> None:
        # Each outcome's hash fields, made once: the hash and the announcement hold the same.
        announced = {o["commandId"]: _outcome_fields(o) for o in outcomes}
        keys, ops = self._ops(upserts, deletes, announced)
        try:
            await self._execute(keys, ops, announced)
        except NoScriptError:
            # A Redis that restarted has no scripts: load it, and the batch again. The
            # announcement of the failed try went out, harmlessly: PostgreSQL has the batch.
            await self.client.script_load(_WRITE_BATCH)
            await self._execute(keys, ops, announced)

    async def _execute(self, keys: list[str], ops: list[list[Any]],
                       announced: dict[str, dict[str, str]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for i in range(0, len(keys), OPS_PER_CALL):
            chunk = keys[i:i + OPS_PER_CALL]
            pipe.evalsha(self._sha, len(chunk), *chunk, _json(ops[i:i + OPS_PER_CALL]))
        if announced:  # after the states they describe are written
            pipe.publish(OUTCOME_CHANNEL, _json(announced))
        await pipe.execute()

    def _ops(
        self,
        upserts: Sequence[dict[str, Any]],
        deletes: Sequence[dict[str, Any]],
        outcomes: dict[str, dict[str, str]],
    ) -> tuple[list[str], list[list[Any]]]:
        """The batch as keys and their ops (see `_WRITE_BATCH`)."""
        s = self.settings
        keys: list[str] = []
        ops: list[list[Any]] = []

        def replace(key: str, ttl: int, guard: str, value: int, fields: dict[str, Any]) -> None:
            keys.append(key)
            ops.append(["R", ttl, guard, str(value), *_fields(fields)])

        def jobs(state: dict[str, Any], doc: dict[str, Any] | None) -> None:
            for job in (state.get("jobs") or {}).values():
                replace(job_key(job["jobId"]), s.ttl_job_seconds, "version", state["version"], {
                    "jobType": job["jobType"], "status": job["status"],
                    "progress": str(job["progress"]), "eventId": state["eventId"],
                    "userId": state["userId"], "error": job["error"],
                    # the API's answer, sent as stored by its fast path
                    "doc": job_status_body(job, doc).decode(),
                })

        for state in upserts:
            event_id, version = state["eventId"], state["version"]
            doc = event_document(state)
            replace(draft_key(event_id), s.ttl_draft_seconds, "version", version, {
                "eventName": state.get("eventName"),
                "description": state.get("description"),
                "objective": state["objective"],
                "status": state["status"],
                "userId": state["userId"],
                "storeId": state["storeId"],
                "storeName": state["storeName"],
                "doc": doc,
            })
            if state["status"] == "DRAFT":
                # The user's latest draft: a newer createdAt wins, whatever order we see them.
                replace(session_key(state["userId"]), s.ttl_session_seconds,
                        "createdAt", state["createdAt"], {
                            "eventId": event_id, "objective": state["objective"],
                            "storeId": state["storeId"]})
            jobs(state, doc)
            if state.get("recommendations"):
                replace(recommendation_key(event_id), s.ttl_recommendation_seconds,
                        "version", version, {
                            "trendAnalysis": state.get("trendAnalysis"),
                            "recommendations": doc["recommendations"],
                        })
        for state in deletes:
            for key in (draft_key(state["eventId"]), recommendation_key(state["eventId"])):
                keys.append(key)
                ops.append(["D"])
            jobs(state, None)  # a discarded event's jobs outlive it, without its results
        for command_id, fields in outcomes.items():
            keys.append(outcome_key(command_id))
            ops.append(["S", s.ttl_outcome_seconds, *_fields(fields)])
        return keys, ops
