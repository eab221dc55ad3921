"""Check and rebuild the projections against the `events` changelog, their source of truth.

`check` reads the changelog to its end (the newest state per event), compares both stores
with it, and reports an event whose changelog goes back in version (its last record older
than one before it: what a restart would restore). `rebuild` empties the projected keys and
rows and writes every state again through the same sinks the projector uses. Command
outcomes are not in the changelog: a rebuild keeps them as they are.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from psycopg.rows import dict_row
from redis.asyncio import Redis

from eventpipe.settings import Settings
from sinks.batch import PROJECTED_STATUSES, Batch
from sinks.postgres import PostgresSink
from sinks.redis import RedisSink, draft_key
from streams.admin import EVENTS_TABLE, existing_partitions
from streams.envelope import now_ms
from streams.topics import changelog_topic

__all__ = ["NoChangelog", "check", "read_changelog", "rebuild"]

T = TypeVar("T")

_REBUILD_BATCH = 2000
# Redis keys read or deleted per round trip (one script call, or one UNLINK of many keys).
_REDIS_CHUNK = 1000
# Each key's `version` field, false where the key is missing: one reply for many keys.
_VERSIONS = """
local found = {}
for i, key in ipairs(KEYS) do found[i] = redis.call('HGET', key, 'version') end
return found
"""
# A key this close to its expiry is not judged (a clock read on either side of it).
_TTL_MARGIN_SECONDS = 60
_PROJECTED_KEYS = ("event:draft:*", "event:session:*", "job:status:*", "ai:recommendation:*")


async def read_changelog(settings: Settings) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The newest state of every event, read from the changelog's start to its end, and
    every place where an event's record is older than one before it: a restart or a
    partition move restores the last record, so there the table would go back in time."""
    topic = changelog_topic(settings.app_id, EVENTS_TABLE)
    # Not subscribed by name: a consumer's metadata request for a missing topic lets the
    # broker auto-create it, and a mistyped APP_ID would make an uncompacted changelog (and
    # a rebuild from it empty both stores).
    found = await asyncio.to_thread(existing_partitions, settings.kafka_bootstrap_servers, topic)
    if found is None:
        raise NoChangelog(topic, settings.app_id)
    partitions = [TopicPartition(topic, p) for p in found]
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers,
                                enable_auto_commit=False, group_id=None,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        batch = Batch()
        last: dict[str, int] = {}  # eventId -> version of its latest record so far
        regressions: list[str] = []
        pending = {tp for tp in partitions if ends[tp] > 0}
        while pending:
            polled = await consumer.getmany(*pending, timeout_ms=1000)
            for tp, records in polled.items():
                for record in records:
                    if record.value is None:
                        continue
                    state = orjson.loads(record.value)
                    event_id, version = state["eventId"], state["version"]
                    if version < last.get(event_id, version):
                        regressions.append(
                            f"changelog {event_id}: version {version} at {tp.partition}"
                            f"@{record.offset} after version {last[event_id]}")
                    last[event_id] = version
                    batch.add_state(state)
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        return batch.states, regressions
    finally:
        await consumer.stop()


class NoChangelog(RuntimeError):
    def __init__(self, topic: str, app_id: str) -> None:
        super().__init__(f"the changelog {topic} does not exist: no worker of APP_ID={app_id}"
                         " has run on this broker (is APP_ID right?); nothing was read or"
                         " changed")


async def check(settings: Settings) -> list[str]:
    """Every difference between the changelog and the two stores (empty: they agree)."""
    states, differences = await read_changelog(settings)
    sink = PostgresSink(settings.database_url)
    await sink.start()
    try:
        async with sink.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "SELECT e.event_id::text AS id, e.version, e.status,"
                " (SELECT count(*) FROM ai_recommendations r WHERE r.event_id = e.event_id)"
                " AS recs,"
                " (SELECT count(*) FROM generated_images i WHERE i.event_id = e.event_id)"
                " AS images FROM events e")
            rows = {r["id"]: r for r in await cur.fetchall()}
            await cur.execute("SELECT job_id::text AS id, status, progress FROM jobs")
            jobs = {r["id"]: r for r in await cur.fetchall()}
    finally:
        await sink.stop()
    for event_id, state in states.items():
        differences += _compare_postgres(event_id, state, rows.pop(event_id, None), jobs)
    differences += await _compare_redis(settings, states)
    differences += [f"postgres events {event_id}: not in the changelog" for event_id in rows]
    return differences


async def _compare_redis(settings: Settings, states: dict[str, dict[str, Any]]) -> list[str]:
    found: list[str] = []
    now = now_ms()
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    versions = redis.register_script(_VERSIONS)
    try:
        for chunk in _chunks(list(states.items()), _REDIS_CHUNK):
            found_versions = await versions(keys=[draft_key(event_id) for event_id, _ in chunk])
            for (event_id, state), cached in zip(chunk, found_versions, strict=True):
                projected = state["status"] in PROJECTED_STATUSES
                if cached is None:
                    # Written with a TTL from its state's time: missing before that is lost
                    # (a Redis that dropped acknowledged writes); missing after it, expired.
                    age = now - int(state["updatedAt"])
                    if projected and age < (settings.ttl_draft_seconds
                                            - _TTL_MARGIN_SECONDS) * 1000:
                        found.append(f"redis {draft_key(event_id)}: missing within its TTL"
                                     f" (changelog version {state['version']})")
                elif not projected or int(cached) != state["version"]:
                    found.append(f"redis {draft_key(event_id)}: version {cached}, "
                                 f"changelog {state['version']} ({state['status']})")
    finally:
        await redis.aclose()
    return found


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _compare_postgres(event_id: str, state: dict[str, Any], row: dict[str, Any] | None,
                      jobs: dict[str, dict[str, Any]]) -> list[str]:
    found: list[str] = []
    if state["status"] not in PROJECTED_STATUSES:
        if row is not None:
            found.append(f"postgres events {event_id}: present, changelog says discarded")
        return found
    if row is None:
        return [f"postgres events {event_id}: missing (changelog version {state['version']})"]
    expected = (state["version"], state["status"], len(state.get("recommendations") or []),
                len(state.get("images") or []))
    actual = (row["version"], row["status"], row["recs"], row["images"])
    if expected != actual:
        found.append(f"postgres events {event_id}: (version, status, recommendations, images)"
                     f" {actual}, changelog {expected}")
    for job in (state.get("jobs") or {}).values():
        stored = jobs.get(job["jobId"])
        if stored is None or (stored["status"], stored["progress"]) != (job["status"],
                                                                         job["progress"]):
            found.append(f"postgres jobs {job['jobId']}: {stored and dict(stored)}, "
                         f"changelog {job['status']} {job['progress']}")
    return found


async def rebuild(settings: Settings) -> int:
    """Empty the projections and write every changelog state again; returns how many."""
    states = list((await read_changelog(settings))[0].values())
    postgres, redis = PostgresSink(settings.database_url), RedisSink(settings)
    await postgres.start()
    try:
        async with postgres.pool.connection() as conn:
            await conn.execute("TRUNCATE events, jobs CASCADE")
        for pattern in _PROJECTED_KEYS:
            keys = [key async for key in redis.client.scan_iter(match=pattern,
                                                                 count=_REDIS_CHUNK)]
            for chunk in _chunks(keys, _REDIS_CHUNK):
                await redis.client.unlink(*chunk)
        for chunk in _chunks(states, _REBUILD_BATCH):
            batch = Batch()
            for state in chunk:
                batch.add_state(state)
            # The two stores at once: PostgreSQL works in its own process meanwhile.
            await asyncio.gather(postgres.write(batch.upserts, [], []),
                                 redis.write(batch.upserts, [], []))
        # Jobs of discarded events stay, as they would have: project them too.
        discarded_jobs = [s for s in states if s["status"] not in PROJECTED_STATUSES]
        await postgres.write_jobs(discarded_jobs)
        await redis.write([], discarded_jobs, [])
    finally:
        await postgres.stop()
        await redis.stop()
    return len(states)
