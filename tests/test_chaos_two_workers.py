"""Issue 8.4: two workers with standby replicas; kill -9 of one in the middle of a load.

Its partitions move to the other, which held their changelog as a standby (a warm table),
processing goes on, and every command is applied once.
"""

from __future__ import annotations

import json
import re
import time
import uuid
import zlib
from collections.abc import Iterator

import psycopg
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from eventpipe.settings import Settings
from streams.admin import EVENTS_TABLE
from streams.partitioner import partition_of
from streams.topics import DLQ, PURPOSE, changelog_topic
from tests.conftest import STACK, WORKER_READY, Process, _free_port, _wait
from tests.kafka_helpers import read_to_end, window_start
from tests.oracle import log_marks, settle, verify
from tests.pipeline import Topics, applied_when_settled, outcomes_when_settled
from tests.test_lifecycle_topics import STORE
from tests.test_projections import eventpipe

EVENTS = 1500  # x 4 commands = 6,000
NAMES = ("가", "나", "다")
_MEMBER = re.compile(r"Joined group '([^']+)' \(generation \d+\) with member_id (\S+)")


def _member_id(proc: Process, group: str) -> str | None:
    """The worker's newest member id in the group, from its log."""
    found = [m.group(2) for m in _MEMBER.finditer(proc.log.read_text(errors="replace"))
             if m.group(1) == group]
    return found[-1] if found else None


def _assignment(settings: Settings) -> dict[str, set[tuple[str, int]]]:
    """member id -> the (topic, partition)s the group's leader gave it."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    group = admin.describe_consumer_groups([settings.app_id])[settings.app_id].result(timeout=10)
    return {m.member_id: {(tp.topic, tp.partition) for tp in m.assignment.topic_partitions}
            for m in group.members}


def _actives(assigned: set[tuple[str, int]]) -> set[int]:
    return {p for topic, p in assigned if topic == PURPOSE.name}


@pytest.fixture
def standby_workers(worker: Process, process_env: dict[str, str],
                    settings: Settings) -> Iterator[Process]:
    """The suite's worker restarted with a standby replica, and a second one beside it."""
    worker.env["TABLE_STANDBY_REPLICAS"] = "1"
    second = Process("test-worker-2", ["worker"], {
        **process_env, "TABLE_STANDBY_REPLICAS": "1", "WORKER_WEB_PORT": str(_free_port()),
        "DATA_DIR": str(STACK / "test-worker-2")})
    second.log.unlink(missing_ok=True)
    try:
        worker.restart(WORKER_READY)
        second.start()
        _wait("second worker", lambda: WORKER_READY in second.log.read_text(), 180,
              second.proc, second.log)
        yield second
    finally:
        # Gracefully (it leaves the group): killed, its partitions would wait out its session
        # while the next test's commands went to them.
        second.stop()
        del worker.env["TABLE_STANDBY_REPLICAS"]  # the suite's default from its next start
        _wait("the suite's worker with every partition again",
              lambda: [_actives(a) for a in _assignment(settings).values()] == [{0, 1, 2}],
              120, worker.proc, worker.log)


@pytest.mark.chaos
@pytest.mark.timeout(900)
def test_kill_9_of_one_of_two_workers_moves_its_partitions_to_the_other(
        topics: Topics, settings: Settings, worker: Process,
        standby_workers: Process) -> None:
    second = standby_workers
    changelog = changelog_topic(settings.app_id, EVENTS_TABLE)
    members: dict[str, set[tuple[str, int]]] = {}

    def both_active() -> bool:
        nonlocal members
        ids = (_member_id(worker, settings.app_id), _member_id(second, settings.app_id))
        members = _assignment(settings)
        return set(ids) == set(members) and all(_actives(members[i]) for i in ids)

    _wait("both workers with partitions", both_active, 120, worker.proc, worker.log)
    first_id, second_id = _member_id(worker, settings.app_id), _member_id(second, settings.app_id)
    moving = _actives(members[second_id])
    assert _actives(members[first_id]) | moving == {0, 1, 2}
    # The survivor-to-be holds the changelog of the partitions that will move: a standby.
    assert {(changelog, p) for p in moving} <= members[first_id]

    since = window_start()
    marks = log_marks([worker.log, second.log])
    user = str(uuid.uuid4())
    update = {"eventName": None, "description": None, "startDate": None, "endDate": None,
              "channels": None}
    commands = [
        (PURPOSE, str(uuid.uuid4()), user, "PurposeSelected", STORE) for _ in range(EVENTS)]
    commands += [(PURPOSE, c[1], user, "DraftUpdated", {**update, "eventName": name})
                 for name in NAMES for c in commands[:EVENTS]]
    half = len(commands) // 2
    topics.send_many(commands[:half])
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and conn.execute(
                "SELECT count(*) FROM events WHERE user_id = %s", (user,)).fetchone()[0] < 300:
            time.sleep(0.1)
        second.stop(sig_kill=True)  # mid-stream
        topics.send_many(commands[half:])  # processing goes on, on the survivor

        def survivor_has_all() -> bool:
            assignment = _assignment(settings)
            return [_actives(a) for a in assignment.values()] == [{0, 1, 2}]

        _wait("the survivor with every partition", survivor_has_all, 120, worker.proc,
              worker.log)
        applied_when_settled(conn, user, EVENTS)
        outcomes_when_settled(conn, user, len(commands))
        rows = conn.execute("SELECT event_name, version, count(*) FROM events"
                            " WHERE user_id = %s GROUP BY 1, 2", (user,)).fetchall()
    assignment = _assignment(settings)
    assert [_actives(a) for a in assignment.values()] == [{0, 1, 2}]
    assert worker.proc.poll() is None
    # Every event as its four commands say: none lost, none applied twice.
    assert rows == [(NAMES[-1], 4, EVENTS)]
    settle(settings)
    report = verify(settings, since, users=[user], logs=marks, redis_client=topics.rds,
                    codecs=topics.codecs)
    assert report.ok, str(report)
    assert report.counts["commands"] == len(commands) == report.counts["accepted"]
    check = eventpipe("projections", "check")
    assert check.returncode == 0, check.stdout[-3000:]
    assert check.stdout.strip().endswith("0 differences")


def _crc32_misplaced_event_id() -> str:
    """An eventId that librdkafka's default partitioner (CRC32) puts on another partition
    than murmur2, the pipeline's, does."""
    while True:
        event_id = str(uuid.uuid4())
        key = event_id.encode()
        if zlib.crc32(key) % 3 != partition_of(key, 3):
            return event_id


@pytest.mark.chaos
@pytest.mark.timeout(600)
def test_a_command_on_the_wrong_partition_is_forwarded_and_never_splits_its_event(
        topics: Topics, settings: Settings, worker: Process,
        standby_workers: Process) -> None:
    second = standby_workers
    _wait("both workers with partitions",
          lambda: all(_actives(a) for a in _assignment(settings).values())
          and len(_assignment(settings)) == 2, 120, worker.proc, worker.log)
    since = window_start()
    user, event_id = str(uuid.uuid4()), _crc32_misplaced_event_id()
    right = partition_of(event_id.encode(), 3)
    crc32 = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers, "acks": "all"})
    landed: list[int] = []
    update = {"eventName": "잘못된 파티션", "description": None, "startDate": None,
              "endDate": None, "channels": None}
    ids = []
    for command_type, payload in (("PurposeSelected", STORE), ("DraftUpdated", update)):
        command_id = str(uuid.uuid4())
        ids.append(command_id)
        crc32.produce(PURPOSE.name, key=event_id.encode(), value=topics.codecs[PURPOSE.name]
                      .encode({"commandId": command_id, "eventId": event_id, "userId": user,
                               "occurredAt": int(time.time() * 1000),
                               "payload": (f"eventpipe.purpose.{command_type}", payload)}),
                      on_delivery=lambda err, msg: landed.append(msg.partition()))
        crc32.flush(10)
        # Each decided in turn, by whichever worker owns the event's partition.
        assert topics.outcome(command_id)["status"] == "ACCEPTED"
    assert landed and set(landed) != {right}  # the producer did put them elsewhere
    assert topics.event(event_id)["eventName"] == "잘못된 파티션"

    changelog = changelog_topic(settings.app_id, EVENTS_TABLE)
    states = [(p, json.loads(v)) for p, k, v in read_to_end(settings, changelog, since)
              if k == json.dumps(event_id).encode()]
    # One event, one changelog partition: the one its key hashes to, for either worker.
    assert {p for p, _ in states} == {right}
    assert [s["version"] for _, s in states] == [1, 2]
    assert not [v for _, k, v in read_to_end(settings, DLQ.name, since)
                if k == event_id.encode()]
    for proc in (worker, second):
        text = proc.log.read_text(errors="replace")
        if f"key {event_id.encode()!r} belongs on partition {right}" in text:
            break
    else:
        raise AssertionError("no worker says it forwarded the misplaced commands")
    report = verify(settings, since, events=[event_id], sent=ids, redis_client=topics.rds,
                    codecs=topics.codecs)
    assert report.ok, str(report)
    assert report.counts["on a wrong partition"] == 2 and report.counts["accepted"] == 2
