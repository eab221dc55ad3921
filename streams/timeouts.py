"""Job timeouts: a job unfinished `JOB_TIMEOUT_SECONDS` after its request fails.

The timer does not touch the table: it writes the failure to the job's topic, keyed by the
event, so the processor owning that partition applies it like any worker's report. The
commandId derives from the jobId, so a report sent twice has one effect.

It looks only at `OpenJobs`, an index of the events that have an unfinished job, kept by
the processor on every stored state and rebuilt from the table after each recovery.
Scanning the whole table instead cost a full pass over every state per tick: seconds of CPU
per second with a few tens of thousands of events, and hopeless with a million.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from streams import lifecycle
from streams.codec import AvroCodec
from streams.envelope import command_record, now_ms
from streams.topics import IMAGE, RECOMMENDATION, TopicSpec

__all__ = ["OpenJobs", "fail_overdue_jobs"]

# The failure the timer reports, per job type, and on which topic.
TIMEOUT_FAILURES: dict[str, tuple[TopicSpec, str]] = {
    lifecycle.AI_RECOMMENDATION: (RECOMMENDATION, "RecommendationJobFailed"),
    lifecycle.IMAGE_GENERATION: (IMAGE, "ImageJobFailed"),
}
_TIMEOUT_NAMESPACE = uuid.UUID("0f5e2d8c-6c1b-4d57-9b8e-3e2a9c7d4b61")


def _unfinished(state: dict[str, Any]) -> list[dict[str, Any]]:
    if state["status"] == "DISCARDED":
        return []  # the event is gone; its jobs stay as they were
    return [job for job in (state.get("jobs") or {}).values()
            if job["status"] not in lifecycle.FINISHED_JOB]


class OpenJobs:
    """eventId -> when the oldest unfinished job of that event was requested (ms)."""

    def __init__(self) -> None:
        self._since: dict[str, int] = {}
        self.stale = True  # rebuild from the table before use (at start, after a rebalance)

    def __len__(self) -> int:
        return len(self._since)

    def track(self, event_id: str, state: dict[str, Any] | None) -> None:
        """Called with each state the table gets (None: the event is gone)."""
        jobs = _unfinished(state) if state is not None else []
        if jobs:
            self._since[event_id] = min(job["createdAt"] for job in jobs)
        else:
            self._since.pop(event_id, None)

    def rebuild(self, states: Iterable[tuple[str, dict[str, Any]]]) -> None:
        self._since.clear()
        for event_id, state in states:
            self.track(event_id, state)
        self.stale = False

    def requested_before(self, cutoff_ms: int) -> list[str]:
        return [event_id for event_id, since in self._since.items() if since <= cutoff_ms]


async def fail_overdue_jobs(
    open_jobs: OpenJobs,
    read: Callable[[str], dict[str, Any] | None],
    codecs: dict[str, AvroCodec],
    send: Callable[[str, bytes, bytes], Awaitable[Any]],
    timeout_ms: int,
) -> int:
    """Report every job unfinished after `timeout_ms` as FAILED through `send(topic, key,
    value)`, reading states with `read`; returns how many."""
    now = now_ms()
    sent = 0
    for event_id in open_jobs.requested_before(now - timeout_ms):
        state = read(event_id)
        if state is None:  # its partition moved to another worker
            open_jobs.track(event_id, None)
            continue
        for job in _unfinished(state):
            if now - job["createdAt"] < timeout_ms:
                continue
            spec, record = TIMEOUT_FAILURES[job["jobType"]]
            envelope = command_record(
                spec, record, event_id, state["userId"],
                {"jobId": job["jobId"],
                 "error": f"TIMEOUT: not finished within {timeout_ms // 1000} s"},
                command_id=str(uuid.uuid5(_TIMEOUT_NAMESPACE, job["jobId"])), occurred_at_ms=now)
            await send(spec.name, event_id.encode(), codecs[spec.name].encode(envelope))
            sent += 1
    return sent
