"""The one strict oracle of the fault tests and the soak.

From the commands on the four command topics (read to their end offsets), the model
(`streams.lifecycle.apply`, in the order the pipeline decided each event's commands) says
what every event, outcome and fact must be. The oracle then compares, field by field and
children in order:

- every command: exactly one decision (outcome, or a dead letter), the outcome's status,
  code and eventVersion as the model decides, repeated outcomes never contradicting the
  first, and each command topic's commands decided in the order Kafka holds them;
- every fact the model announces on its topic (event-topic by commandId, job topics by
  jobId, distribution requests by event and request time), each copy equal to the model's;
  no fact the model does not announce;
- the changelog's last state of every event, the PostgreSQL rows (and the event as the
  API's PostgreSQL read path builds it), the Redis draft, job and outcome keys (a key missing
  within its TTL is a difference), and PostgreSQL's command_outcomes;
- the DLQ: exactly the poison sent (and the commands the model finds inapplicable);
- the logs given: no traceback.

What it calls lost and doubled is what a user would see: a command without a decision, a
fact or a projection missing or behind the model (lost); a state applied twice (ahead of the
model), two outcomes of one command that contradict each other (doubled). A fact or outcome
delivered again with the same content is at-least-once delivery as designed
(topology.md, "Delivery guarantee"): counted as `redelivered`, never a failure.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from api.queries import EventQueries
from eventpipe.settings import Settings
from sinks.batch import PROJECTED_STATUSES
from sinks.documents import event_document, job_status_body
from sinks.redis import draft_key, job_key, outcome_key
from streams.admin import EVENTS_TABLE
from streams.codec import AvroCodec, DecodeError, register_codecs
from streams.envelope import FACT_TOPICS, to_command
from streams.lifecycle import Command, Decision, Inapplicable, apply
from streams.partitioner import partition_of
from streams.processor import MAX_COMMAND_BYTES
from streams.topics import (
    AI_JOB,
    COMMAND_TOPICS,
    CONTENT_JOB,
    DISTRIBUTION_JOB,
    DLQ,
    EVENT_TOPIC,
    OUTCOME,
    changelog_topic,
)
from tests.kafka_helpers import read_records

__all__ = ["Poison", "Report", "verify"]

TRACEBACK = "Traceback (most recent call last)"
TTL_MARGIN_SECONDS = 60  # a key this close to its expiry is not judged


@dataclass(frozen=True)
class Poison:
    """A message sent to be dead-lettered: the oracle finds it in the DLQ with this code."""

    topic: str
    value: bytes | None
    code: str


@dataclass
class Report:
    lost: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)  # eventIds named by any of the above
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.doubled or self.differences)

    def problem(self, kind: str, event_id: str | None, text: str) -> None:
        getattr(self, kind).append(text)
        if event_id:
            self.touched.add(event_id)

    def __str__(self) -> str:
        lines = [f"oracle: {dict(sorted(self.counts.items()))}",
                 f"lost {len(self.lost)}, doubled {len(self.doubled)},"
                 f" other differences {len(self.differences)}"]
        for kind in ("lost", "doubled", "differences"):
            items = getattr(self, kind)
            lines += [f"  {kind}: {item}" for item in items[:40]]
            if len(items) > 40:
                lines.append(f"  {kind}: ... and {len(items) - 40} more")
        if self.touched:
            lines.append(f"events touched ({len(self.touched)}): "
                         + ", ".join(sorted(self.touched)[:20])
                         + (" ..." if len(self.touched) > 20 else ""))
        return "\n".join(lines)


@dataclass
class _Seen:
    command: Command
    topic: str
    first_offset: int  # on the partition its key hashes to (a forwarded copy: the forward)


def _diff(where: str, expected: Any, actual: Any) -> list[str]:
    """Field by field (lists element by element, in order): each path that differs."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        out: list[str] = []
        for key in sorted(set(expected) | set(actual), key=str):
            if key not in actual:
                out.append(f"{where}.{key}: missing, model {expected[key]!r}")
            elif key not in expected:
                out.append(f"{where}.{key}: {actual[key]!r}, not in the model")
            else:
                out += _diff(f"{where}.{key}", expected[key], actual[key])
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{where}: {len(actual)} items, model {len(expected)}: {actual!r}"
                    f" vs {expected!r}"]
        return [d for i, (e, a) in enumerate(zip(expected, actual, strict=True))
                for d in _diff(f"{where}[{i}]", e, a)]
    if expected != actual:
        return [f"{where}: {actual!r}, model {expected!r}"]
    return []


def _decode(codec: AvroCodec, value: bytes | None) -> dict[str, Any] | None:
    try:
        return codec.read(value)
    except DecodeError:
        return None


def _fact_key(fact_type: str, payload: dict[str, Any], message_id: str | None) -> tuple[Any, ...]:
    if fact_type in ("EventDraftCreated", "EventCreated"):
        return (fact_type, message_id)
    if fact_type == "DistributionRequested":
        return (fact_type, str(payload["eventId"]), payload["requestedAt"])
    return (fact_type, str(payload["jobId"]))


def _plain(value: Any) -> Any:
    """Values as the codec's plain read gives them (uuids as strings)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "hex") and type(value).__name__ == "UUID":
        return str(value)
    return value


def verify(settings: Settings, since_ms: int, *, events: Iterable[str] | None = None,
           users: Iterable[str] | None = None, sent: Iterable[str] = (),
           poison: Iterable[Poison] = (),
           logs: Iterable[tuple[Path, int]] = (), redis_client: redis.Redis | None = None,
           codecs: dict[str, AvroCodec] | None = None) -> Report:
    """Compare everything written since `since_ms` with the model.

    events: the eventIds to check (default: every event with a command since `since_ms`, of
    one of `users` if given);
    sent: commandIds that were sent and must each have a decision; poison: what the DLQ must
    hold (exactly); logs: (file, byte offset) pairs that must hold no traceback after it.
    Call it once the pipeline has settled (see `settle`)."""
    report = Report()
    codecs = codecs or register_codecs(settings.schema_registry_url)
    tracked = set(events) if events is not None else None
    seen, dead = _read_commands(settings, since_ms, codecs, tracked,
                                set(users) if users is not None else None, report)
    tracked = tracked if tracked is not None else {s.command.event_id for s in seen.values()}
    outcomes = _read_outcomes(settings, since_ms, codecs, tracked)
    letters = _read_dlq(settings, since_ms, codecs)
    for letter in letters:  # a decodable command that was dead-lettered has its decision
        decoded = _decode(codecs[letter["topic"]], letter["value"]) \
            if letter["topic"] in codecs else None
        if decoded is not None and "commandId" in decoded:
            dead.add(str(decoded["commandId"]))
    dead_ids = dead

    # Every command sent has a decision: an outcome or a dead letter.
    for command_id in sent:
        if command_id not in seen and command_id not in dead_ids:
            report.problem("lost", None, f"command {command_id}: sent, not on its topic")
    order: dict[str, list[str]] = defaultdict(list)  # eventId -> commandIds, decision order
    for command_id, copies in outcomes.items():
        order[copies[0]["eventId"]].append(command_id)
    for command_id, item in seen.items():
        if command_id not in outcomes and command_id not in dead_ids:
            report.problem("lost", item.command.event_id,
                           f"command {command_id} ({item.command.type}) of event "
                           f"{item.command.event_id}: no outcome, no dead letter")
        if command_id in outcomes and command_id in dead_ids:
            report.problem("doubled", item.command.event_id,
                           f"command {command_id}: both an outcome and a dead letter")

    expected_facts: dict[tuple[Any, ...], tuple[str, dict[str, Any]]] = {}
    states: dict[str, dict[str, Any] | None] = {}
    first_outcome: dict[str, dict[str, Any]] = {}
    changelog = _read_changelog(settings, since_ms, tracked)
    for event_id in sorted(tracked):
        state: dict[str, Any] | None = None
        ids = _as_applied([cid for cid in order.get(event_id, []) if cid in seen],
                          changelog.get(event_id))
        _check_topic_order(event_id, ids, seen, report)
        decisions: list[tuple[str, Decision]] = []
        for command_id in ids:
            command = seen[command_id].command
            copies = outcomes[command_id]
            first_outcome[command_id] = copies[0]
            try:
                decision = apply(state, command)
            except Inapplicable as exc:
                report.problem("differences", event_id,
                               f"command {command_id} ({command.type}): model dead-letters it"
                               f" ({exc.code}), pipeline answered {copies[0]['status']}")
                continue
            decisions.append((command_id, decision))
            if decision.changed and decision.state is not None:
                state = decision.state
            if not decision.duplicate:
                for fact in decision.facts:
                    key = _fact_key(fact.type, fact.payload, command_id)
                    expected_facts[key] = (event_id, _plain(fact.payload))
            report.counts["decided"] += 1
        states[event_id] = state
        final = int(state["version"]) if state else 0
        for command_id, decision in decisions:
            _check_outcomes(seen[command_id].command, decision, outcomes[command_id], report,
                            final)

    _check_facts(settings, since_ms, codecs, tracked, expected_facts, report)
    _check_dead_letters(letters, dead, poison, report)
    for event_id, state in states.items():
        _check_changelog(event_id, state, changelog.get(event_id), report)
    asyncio.run(_check_postgres(settings, states, first_outcome, report))
    rds = redis_client or redis.Redis.from_url(settings.redis_url, decode_responses=True)
    _check_redis(settings, rds, states, first_outcome, report)
    _check_logs(logs, report)
    report.counts["events"] = len(tracked)
    report.counts["commands"] = len(seen)
    report.counts["lost"] = len(report.lost)
    report.counts["doubled"] = len(report.doubled)
    return report


# ------------------------------------------------------------------ reading

def _read_commands(settings: Settings, since_ms: int, codecs: dict[str, AvroCodec],
                   tracked: set[str] | None, users: set[str] | None, report: Report
                   ) -> tuple[dict[str, _Seen], set[str]]:
    """First copy of every decodable command of the tracked events, by commandId (a copy on
    a partition its key does not hash to is forwarded: the forward is where it is decided)."""
    seen: dict[str, _Seen] = {}
    dead: set[str] = set()
    for spec in COMMAND_TOPICS:
        records = read_records(settings, spec.name, since_ms)
        partitions = 1 + max((r.partition for r in records), default=0)
        partitions = max(partitions, settings.topic_partitions)
        for record in records:
            if len(record.value or b"") > MAX_COMMAND_BYTES:
                continue  # TOO_LARGE poison
            decoded = _decode(codecs[spec.name], record.value)
            if decoded is None or not record.key:
                continue
            try:
                command = to_command(decoded)
            except (KeyError, TypeError, ValueError, AttributeError):
                continue
            if tracked is not None and command.event_id not in tracked:
                continue
            if tracked is None and users is not None and command.user_id not in users:
                continue
            if record.key.decode("utf-8", "replace") != command.event_id:
                continue  # KEY_MISMATCH poison
            report.counts[f"records {spec.name}"] += 1
            if partition_of(record.key, partitions) != record.partition:
                report.counts["on a wrong partition"] += 1
                continue
            if command.command_id not in seen:
                seen[command.command_id] = _Seen(command, spec.name, record.offset)
            else:
                report.counts["command copies"] += 1
    return seen, dead


def _as_applied(ids: list[str], last_state: dict[str, Any] | None) -> list[str]:
    """An event's commands in the order they were decided: their first outcomes' order,
    except that those its last state remembers take the order they were applied in. After a
    kill -9 the replay answers, as duplicates, commands whose first outcomes were lost, in
    the order of its own fetches, which across two topics may differ from the first pass's."""
    applied = {cid: i for i, cid in enumerate((last_state or {}).get("recentCommands", []))}
    slots = [i for i, cid in enumerate(ids) if cid in applied]
    in_order = list(ids)
    for slot, command_id in zip(slots, sorted((ids[i] for i in slots), key=applied.__getitem__),
                                strict=True):
        in_order[slot] = command_id
    return in_order


def _read_outcomes(settings: Settings, since_ms: int, codecs: dict[str, AvroCodec],
                   tracked: set[str]) -> dict[str, list[dict[str, Any]]]:
    """Every outcome of the tracked events by commandId, in decision order (an event's
    outcomes are on one partition, in the order its processor decided)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for record in read_records(settings, OUTCOME.name, since_ms):
        outcome = codecs[OUTCOME.name].read(record.value)
        if str(outcome["eventId"]) in tracked:
            found.setdefault(str(outcome["commandId"]), []).append(outcome)
    return found


def _read_dlq(settings: Settings, since_ms: int,
              codecs: dict[str, AvroCodec]) -> list[dict[str, Any]]:
    return [codecs[DLQ.name].read(r.value) for r in read_records(settings, DLQ.name, since_ms)]


def _read_changelog(settings: Settings, since_ms: int,
                    tracked: set[str]) -> dict[str, dict[str, Any]]:
    last: dict[str, dict[str, Any]] = {}
    topic = changelog_topic(settings.app_id, EVENTS_TABLE)
    for record in read_records(settings, topic, since_ms):
        if record.value is None or record.key is None:
            continue
        event_id = json.loads(record.key)
        if event_id in tracked:
            last[event_id] = json.loads(record.value)
    return last


# ------------------------------------------------------------------ checks

def _check_topic_order(event_id: str, ids: list[str], seen: dict[str, _Seen],
                       report: Report) -> None:
    """Kafka orders one partition of one topic: the decisions must follow it."""
    by_topic: dict[str, list[_Seen]] = defaultdict(list)
    for command_id in ids:
        by_topic[seen[command_id].topic].append(seen[command_id])
    for topic, items in by_topic.items():
        offsets = [i.first_offset for i in items]
        if offsets != sorted(offsets):
            report.problem("differences", event_id,
                           f"event {event_id}: {topic} decided out of offset order {offsets}")


def _check_outcomes(command: Command, decision: Decision, copies: list[dict[str, Any]],
                    report: Report, final_version: int) -> None:
    first = copies[0]
    expected = {"status": "ACCEPTED" if decision.accepted else "REJECTED",
                "code": decision.code.value if decision.code else None,
                "eventVersion": decision.version, "commandType": command.type,
                "userId": command.user_id}
    actual = {k: _plain(first[k]) for k in expected}
    if (decision.accepted and actual["status"] == "ACCEPTED"
            and decision.version < actual["eventVersion"] <= final_version):
        # A crash after the state reached the changelog and before its outcome was sent:
        # the replay answers it as a duplicate, with the event's version then (by design;
        # a state applied twice would show in the changelog and the stores instead).
        report.counts["outcomes answered as duplicates"] += 1
        actual["eventVersion"] = decision.version
    for line in _diff(f"outcome {command.command_id}", expected, actual):
        report.problem("differences", command.event_id, line)
    report.counts["accepted" if decision.accepted else "rejected"] += 1
    for copy in copies[1:]:
        report.counts["outcomes redelivered"] += 1
        if (copy["status"], copy["code"]) != (first["status"], first["code"]):
            report.problem("doubled", command.event_id,
                           f"command {command.command_id} ({command.type}) of event "
                           f"{command.event_id}: outcomes contradict: {first['status']} "
                           f"{first['code']} then {copy['status']} {copy['code']}")


def _check_facts(settings: Settings, since_ms: int, codecs: dict[str, AvroCodec],
                 tracked: set[str], expected: dict[tuple[Any, ...], tuple[str, dict[str, Any]]],
                 report: Report) -> None:
    copies: Counter[tuple[Any, ...]] = Counter()
    for spec in (EVENT_TOPIC, AI_JOB, CONTENT_JOB, DISTRIBUTION_JOB):
        for record in read_records(settings, spec.name, since_ms):
            value = codecs[spec.name].read(record.value)
            if spec is EVENT_TOPIC:
                name, payload = value["payload"]
                fact_type, message_id = name.rsplit(".", 1)[-1], str(value["messageId"])
                event_id = str(payload.get("eventId") or payload.get("eventDraftId"))
            else:
                fact_type = next(t for t, s in FACT_TOPICS.items() if s is spec)
                payload, message_id, event_id = value, None, str(value["eventId"])
            if event_id not in tracked:
                continue
            key = _fact_key(fact_type, payload, message_id)
            copies[key] += 1
            if key not in expected:
                report.problem("doubled", event_id,
                               f"{spec.name}: fact {key} of event {event_id}: the model"
                               " announces no such fact")
                continue
            for line in _diff(f"{spec.name} {key}", expected[key][1], _plain(payload)):
                report.problem("differences", event_id, line)
    for key, (event_id, _) in expected.items():
        if copies[key] == 0:
            report.problem("lost", event_id, f"fact {key} of event {event_id}: not on its topic")
    report.counts["facts"] = len(expected)
    report.counts["facts redelivered"] = sum(n - 1 for k, n in copies.items()
                                             if k in expected and n > 1)


def _check_dead_letters(letters: list[dict[str, Any]], dead: set[str],
                        poison: Iterable[Poison], report: Report) -> None:
    """Exactly the poison sent: each at least once (a replay may repeat it), nothing else."""
    wanted = Counter((p.topic, p.value, p.code) for p in poison)
    distinct: dict[tuple[str, int, int], dict[str, Any]] = {}
    for letter in letters:
        distinct.setdefault((letter["topic"], letter["partition"], letter["offset"]), letter)
    got = Counter((d["topic"], d["value"], d["errorCode"]) for d in distinct.values())
    report.counts["dead letters"] = len(distinct)
    report.counts["dead letters redelivered"] = len(letters) - len(distinct)
    for item, n in wanted.items():
        if got[item] < n:
            report.problem("lost", None, f"DLQ: poison {item[0]} {item[2]} "
                                         f"{(item[1] or b'')[:40]!r}: {got[item]} of {n}")
    for item, n in got.items():
        if n > wanted[item]:
            report.problem("differences", None,
                           f"DLQ: {n - wanted[item]} unexpected {item[0]} {item[2]} "
                           f"{(item[1] or b'')[:60]!r}")


def _check_changelog(event_id: str, state: dict[str, Any] | None,
                     last: dict[str, Any] | None, report: Report) -> None:
    if state is None:
        if last is not None:
            report.problem("doubled", event_id, f"changelog {event_id}: a state the model"
                                                " never made")
        return
    if last is None:
        report.problem("lost", event_id, f"changelog {event_id}: no state (model version "
                                         f"{state['version']})")
        return
    if last["version"] != state["version"]:
        kind = "doubled" if last["version"] > state["version"] else "lost"
        report.problem(kind, event_id, f"changelog {event_id}: version {last['version']},"
                                       f" model {state['version']}")
    for line in _diff(f"changelog {event_id}", state, last):
        report.problem("differences", event_id, line)


async def _check_postgres(settings: Settings, states: dict[str, dict[str, Any] | None],
                          outcomes: dict[str, dict[str, Any]], report: Report) -> None:
    async with AsyncConnectionPool(settings.database_url, min_size=1, max_size=2,
                                   open=False) as pool:
        await pool.open(wait=True, timeout=30)
        queries = EventQueries(None, pool, None)  # type: ignore[arg-type]
        async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            ids = list(states)
            await cur.execute("SELECT event_id::text AS id, version, status FROM events"
                              " WHERE event_id = ANY(%s::uuid[])", (ids,))
            rows = {r["id"]: r for r in await cur.fetchall()}
            await cur.execute("SELECT job_id::text AS id, status, progress, error_message,"
                              " event_id::text AS event_id FROM jobs"
                              " WHERE event_id = ANY(%s::uuid[])", (ids,))
            jobs = {r["id"]: r for r in await cur.fetchall()}
            await cur.execute("SELECT command_id::text AS id, status, code, event_version"
                              " FROM command_outcomes WHERE command_id = ANY(%s::uuid[])",
                              (list(outcomes),))
            stored = {r["id"]: r for r in await cur.fetchall()}
        for event_id, state in states.items():
            row = rows.get(event_id)
            projected = state is not None and state["status"] in PROJECTED_STATUSES
            if not projected:
                if row is not None:
                    report.problem("doubled", event_id,
                                   f"postgres events {event_id}: present, model has "
                                   f"{state and state['status']}")
            elif row is None:
                report.problem("lost", event_id, f"postgres events {event_id}: missing"
                                                 f" (model version {state['version']})")
            else:
                if row["version"] != state["version"]:
                    kind = "doubled" if row["version"] > state["version"] else "lost"
                    report.problem(kind, event_id, f"postgres events {event_id}: version "
                                                   f"{row['version']}, model {state['version']}")
                found = await queries._event_from_postgres(event_id)
                doc = found[0] if found else None
                for line in _diff(f"postgres (API read) {event_id}", event_document(state), doc):
                    report.problem("differences", event_id, line)
            for job in ((state or {}).get("jobs") or {}).values():
                got = jobs.get(job["jobId"])
                want = {"status": job["status"], "progress": job["progress"],
                        "error_message": job["error"]}
                have = got and {k: got[k] for k in want}
                for line in _diff(f"postgres jobs {job['jobId']}", want, have):
                    report.problem("differences", event_id, line)
        for command_id, outcome in outcomes.items():
            row = stored.get(command_id)
            want = {"status": outcome["status"], "code": outcome["code"],
                    "event_version": outcome["eventVersion"]}
            if row is None:
                report.problem("lost", str(outcome["eventId"]),
                               f"postgres command_outcomes {command_id}: missing")
                continue
            for line in _diff(f"postgres command_outcomes {command_id}", want,
                              {k: row[k] for k in want}):
                report.problem("differences", str(outcome["eventId"]), line)


def _within(now_ms: float, written_ms: int, ttl_seconds: int) -> bool:
    return now_ms - written_ms < (ttl_seconds - TTL_MARGIN_SECONDS) * 1000


def _check_redis(settings: Settings, rds: redis.Redis,
                 states: dict[str, dict[str, Any] | None],
                 outcomes: dict[str, dict[str, Any]], report: Report) -> None:
    """A key missing within its TTL is a difference: the projector wrote it, Redis
    acknowledged it, nothing may have removed it."""
    now = time.time() * 1000
    for event_id, state in states.items():
        cached = rds.hgetall(draft_key(event_id))
        if state is None or state["status"] not in PROJECTED_STATUSES:
            if cached:
                report.problem("doubled", event_id, f"redis {draft_key(event_id)}: present,"
                                                    f" model has {state and state['status']}")
            continue
        if not cached:
            if _within(now, state["updatedAt"], settings.ttl_draft_seconds):
                report.problem("lost", event_id, f"redis {draft_key(event_id)}: missing within"
                                                 f" its TTL (model version {state['version']})")
            continue
        if int(cached["version"]) != state["version"]:
            kind = "doubled" if int(cached["version"]) > state["version"] else "lost"
            report.problem(kind, event_id, f"redis {draft_key(event_id)}: version "
                                           f"{cached['version']}, model {state['version']}")
        for line in _diff(f"redis {draft_key(event_id)}", event_document(state),
                          json.loads(cached["doc"])):
            report.problem("differences", event_id, line)
        for job in (state.get("jobs") or {}).values():
            got = rds.hgetall(job_key(job["jobId"]))
            if not got:
                if _within(now, state["updatedAt"], settings.ttl_job_seconds):
                    report.problem("lost", event_id, f"redis {job_key(job['jobId'])}: missing"
                                                     " within its TTL")
                continue
            for line in _diff(f"redis {job_key(job['jobId'])}",
                              {"status": job["status"], "progress": str(job["progress"]),
                               "doc": json.loads(job_status_body(job, event_document(state)))},
                              {"status": got.get("status"), "progress": got.get("progress"),
                               "doc": json.loads(got.get("doc") or "null")}):
                report.problem("differences", event_id, line)
    for command_id, outcome in outcomes.items():
        got = rds.hgetall(outcome_key(command_id))
        if not got:
            if _within(now, outcome["decidedAt"], settings.ttl_outcome_seconds):
                report.problem("lost", str(outcome["eventId"]),
                               f"redis {outcome_key(command_id)}: missing within its TTL")
            continue
        for line in _diff(f"redis {outcome_key(command_id)}",
                          {"status": outcome["status"], "code": outcome["code"] or ""},
                          {"status": got.get("status"), "code": got.get("code")}):
            report.problem("differences", str(outcome["eventId"]), line)


def _check_logs(logs: Iterable[tuple[Path, int]], report: Report) -> None:
    for path, offset in logs:
        if not path.exists():
            continue
        with path.open("rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
        if TRACEBACK in text:
            at = text.index(TRACEBACK)
            report.problem("differences", None,
                           f"log {path.name}: a traceback: {text[at:at + 600]!r}")


def log_marks(paths: Iterable[Path]) -> list[tuple[Path, int]]:
    """Each log's current size: `verify(logs=...)` then looks only at what comes after."""
    return [(p, p.stat().st_size if p.exists() else 0) for p in paths]




def lag(settings: Settings, group: str, topics: Iterable[str]) -> int:
    """Records of `topics` the group has not committed yet (a partition never committed
    counts from its start)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers,
                         "group.id": group, "enable.auto.commit": False})
    try:
        partitions = []
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            partitions += [TopicPartition(topic, p) for p in meta.partitions]
        behind = 0
        for tp in consumer.committed(partitions, timeout=10):
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            behind += high - (tp.offset if tp.offset >= 0 else low)
        return behind
    finally:
        consumer.close()


def pipeline_groups(settings: Settings, collaborators: bool) -> dict[str, list[str]]:
    """Each consumer group of the pipeline and the topics it must have caught up on."""
    groups = {
        settings.app_id: [s.name for s in COMMAND_TOPICS],
        f"{settings.app_id}-projector": [changelog_topic(settings.app_id, EVENTS_TABLE),
                                         OUTCOME.name],
    }
    if collaborators:
        groups[f"{settings.app_id}-ai-worker"] = [AI_JOB.name]
        groups[f"{settings.app_id}-content-worker"] = [CONTENT_JOB.name]
        groups[f"{settings.app_id}-distribution-worker"] = [DISTRIBUTION_JOB.name]
    return groups


def settle(settings: Settings, collaborators: bool = False, quiet_checks: int = 3,
           limit_seconds: float = 900.0) -> int:
    """Wait until every group has committed every record and the end offsets stay the same
    for `quiet_checks` checks in a row (the job timer or a collaborator may still add
    commands): the pipeline has nothing left to do. Returns the checks it took; a bound on
    waiting only, never asserted as a speed."""
    groups = pipeline_groups(settings, collaborators)
    topics = sorted({t for ts in groups.values() for t in ts})
    from tests.kafka_helpers import end_offsets

    quiet, last, checks = 0, None, 0
    deadline = time.monotonic() + limit_seconds
    while time.monotonic() < deadline:
        checks += 1
        try:
            ends = {t: end_offsets(settings, t) for t in topics}
            behind = sum(lag(settings, g, ts) for g, ts in groups.items())
        except Exception:  # a broker still coming back: not settled
            quiet, last = 0, None
            time.sleep(1)
            continue
        quiet = quiet + 1 if behind == 0 and ends == last else 0
        if quiet >= quiet_checks:
            return checks
        last = ends
        time.sleep(1)
    raise AssertionError(f"the pipeline did not settle: {groups}")
