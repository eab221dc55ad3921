"""Whether the pipeline behind the API can answer a command now: /health/ready's
`streamWorker` and `projector` checks, from the broker (`DescribeGroups`, `Metadata`).

- `streamWorker`: the worker's group (`APP_ID`) is Stable, its members hold every command
  partition, and each holder says on its own `/ready` page (the URL Faust publishes in the
  member's metadata) that it consumes them. The assignment alone is not enough: Faust holds
  a new partition back until its table is recovered, and a command sent then gets a 202.
- `projector`: the projector's group (`APP_ID-projector`) is Stable and holds every
  partition of the changelog and of the outcomes.

One check runs at a time and its result is reused for `API_PIPELINE_CHECK_SECONDS`, so a
load balancer polling readiness costs the broker two requests a second at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)
from aiokafka.errors import GroupCoordinatorNotAvailableError

from eventpipe.settings import Settings
from streams.admin import EVENTS_TABLE
from streams.topics import COMMAND_TOPICS, OUTCOME, changelog_topic

__all__ = ["GroupMember", "PipelineCheck", "describe_members"]

CHECK_SECONDS = 1.5  # the whole pipeline check, broker and worker pages together
Result = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class GroupMember:
    member_id: str
    partitions: frozenset[tuple[str, int]]  # (topic, partition) assigned to it
    url: str | None  # Faust's canonical URL from the member's metadata (None: not Faust's)


@dataclass(frozen=True)
class Group:
    state: str  # Stable, PreparingRebalance, CompletingRebalance, Empty, Dead
    members: tuple[GroupMember, ...] = field(default=())

    @property
    def partitions(self) -> set[tuple[str, int]]:
        return {tp for m in self.members for tp in m.partitions}


def _faust_url(metadata: bytes) -> str | None:
    """The URL in a Faust member's subscription metadata (its user data is JSON)."""
    if not metadata:
        return None
    with contextlib.suppress(Exception):  # a member that is not Faust's has other user data
        user_data = ConsumerProtocolMemberMetadata.decode(metadata).user_data
        url = json.loads(user_data).get("url")
        return str(url) if url else None
    return None


def _assigned(assignment: bytes) -> frozenset[tuple[str, int]]:
    if not assignment:  # a member still joining has none yet
        return frozenset()
    decoded = ConsumerProtocolMemberAssignment.decode(assignment)
    return frozenset((topic, p) for topic, partitions in decoded.assignment
                     for p in partitions)


def describe_members(groups: Iterable[Any]) -> dict[str, Group]:
    """DescribeGroups responses' groups by id (error code 0 only): state, members, each
    member's assignment and URL. A group's tuple is (error_code, group, state,
    protocol_type, protocol, members, ...), a member's (member_id, client_id, client_host,
    member_metadata, member_assignment), in every version aiokafka speaks."""
    out: dict[str, Group] = {}
    for g in groups:
        error_code, group_id, state, members = g[0], g[1], g[2], g[5]
        if error_code != 0:
            continue
        out[group_id] = Group(state, tuple(
            GroupMember(m[0], _assigned(m[4]), _faust_url(m[3])) for m in members))
    return out


def _names(tps: Iterable[tuple[str, int]]) -> str:
    shown = sorted(tps)
    text = ", ".join(f"{t}:{p}" for t, p in shown[:6])
    return text + (f" and {len(shown) - 6} more" if len(shown) > 6 else "")


class PipelineCheck:
    """`await check.results()`: {"streamWorker": {...}, "projector": {...}}, each
    {"status": "UP"|"DOWN", ...} with `error` saying why when DOWN."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.worker_group = settings.app_id
        self.projector_group = f"{settings.app_id}-projector"
        self.command_topics = tuple(spec.name for spec in COMMAND_TOPICS)
        self.projected_topics = (changelog_topic(settings.app_id, EVENTS_TABLE), OUTCOME.name)
        self._admin: AIOKafkaAdminClient | None = None
        self._http = httpx.AsyncClient(timeout=CHECK_SECONDS / 2)
        self._last: tuple[float, Result] | None = None
        self._running: asyncio.Task[Result] | None = None

    async def close(self) -> None:
        if self._running is not None:
            self._running.cancel()
            with contextlib.suppress(BaseException):
                await self._running
        await self._drop_admin()
        await self._http.aclose()

    async def results(self) -> Result:
        last, ttl = self._last, self.settings.api_pipeline_check_seconds
        if last is not None and time.monotonic() - last[0] < ttl:
            return last[1]
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._check(), name="pipeline-check")
        # shield: a caller that gives up must not cancel the check the others wait for
        return await asyncio.shield(self._running)

    async def _check(self) -> Result:
        try:
            result = await asyncio.wait_for(self._ask(), CHECK_SECONDS)
        except Exception as exc:  # the broker away, a timeout: both DOWN, and why
            await self._drop_admin()
            error = {"status": "DOWN",
                     "error": f"{type(exc).__name__}: {exc}"[:300] if str(exc)
                     else f"{type(exc).__name__} (no answer in {CHECK_SECONDS} s)"}
            result = {"streamWorker": dict(error), "projector": dict(error)}
        self._last = (time.monotonic(), result)
        return result

    async def _ask(self) -> Result:
        admin = await self._admin_client()
        wanted = (*self.command_topics, *self.projected_topics)
        # Every topic's metadata, not the wanted ones by name: a Metadata request naming a
        # topic lets the broker auto-create it (aiokafka asks allow_auto_topic_creation), and
        # a readiness probe must never create a changelog with the broker's partition count.
        described = await admin.describe_topics()
        partitions = {t["topic"]: {(t["topic"], p["partition"]) for p in t["partitions"]}
                      for t in described if t["error_code"] == 0 and t["topic"] in wanted}
        missing = [t for t in wanted if not partitions.get(t)]
        if missing:
            down = {"status": "DOWN", "error": f"topics missing: {', '.join(missing)}"}
            return {"streamWorker": dict(down), "projector": dict(down)}
        # One group per request: aiokafka (0.14) decodes a DescribeGroups v3 answer with the
        # v2 schema, which lacks v3's trailing `authorized_operations`; with two groups in
        # one answer the second is read from the wrong offset and the connection fails
        # ("Buffer underrun decoding string"). With one, only the trailing field is left unread.
        groups: dict[str, Group] = {}
        for name in (self.worker_group, self.projector_group):
            try:
                responses = await admin.describe_consumer_groups([name])
            except GroupCoordinatorNotAvailableError:  # no group has committed yet
                continue
            groups.update(describe_members(g for r in responses for g in r.groups))
        commands = set().union(*(partitions[t] for t in self.command_topics))
        projected = set().union(*(partitions[t] for t in self.projected_topics))
        projector = self._group(self.projector_group, groups.get(self.projector_group),
                                projected)
        worker = await self._worker(groups.get(self.worker_group), commands)
        return {"streamWorker": worker, "projector": projector}

    def _group(self, name: str, group: Group | None,
               wanted: set[tuple[str, int]]) -> dict[str, Any]:
        if group is None or not group.members:
            return {"status": "DOWN", "group": name,
                    "error": f"consumer group {name} has no members"
                             f" ({group.state if group else 'unknown'})"}
        if group.state != "Stable":
            return {"status": "DOWN", "group": name, "members": len(group.members),
                    "error": f"consumer group {name} is {group.state} (rebalancing)"}
        unassigned = wanted - group.partitions
        if unassigned:
            return {"status": "DOWN", "group": name, "members": len(group.members),
                    "error": f"{len(unassigned)} partitions of group {name} not assigned: "
                             f"{_names(unassigned)}"}
        return {"status": "UP", "group": name, "members": len(group.members)}

    async def _worker(self, group: Group | None,
                      commands: set[tuple[str, int]]) -> dict[str, Any]:
        status = self._group(self.worker_group, group, commands)
        if status["status"] != "UP" or group is None:
            return status
        holders = [m for m in group.members if m.partitions & commands]
        answers = await asyncio.gather(*(self._member_consuming(m, commands) for m in holders))
        problems = [a for a in answers if a is not None]
        if problems:
            return {**status, "status": "DOWN", "error": "; ".join(problems)[:300]}
        return status

    async def _member_consuming(self, member: GroupMember,
                                commands: set[tuple[str, int]]) -> str | None:
        """None if the member consumes its command partitions, else why not."""
        if member.url is None:
            return f"member {member.member_id} publishes no URL (not a Faust worker)"
        try:
            response = await self._http.get(f"{member.url.rstrip('/')}/ready")
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            return f"worker at {member.url} does not answer ({type(exc).__name__})"
        if not body.get("consuming"):
            return f"worker at {member.url} is not consuming yet: {body.get('reason')}"
        held = {tuple(tp.rsplit(":", 1)) for tp in body.get("commandPartitions", ())}
        mine = {(t, str(p)) for t, p in member.partitions & commands}
        if not mine <= held:  # the group's answer is newer than the worker's own view
            return f"worker at {member.url} has not taken its partitions yet"
        return None

    async def _admin_client(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self.settings.kafka_bootstrap_servers,
                request_timeout_ms=int(CHECK_SECONDS * 1000))
            try:
                await admin.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await admin.close()
                raise
            self._admin = admin
        return self._admin

    async def _drop_admin(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            with contextlib.suppress(Exception):
                await admin.close()
