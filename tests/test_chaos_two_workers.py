"""Issue 8.4: two workers with standby replicas; kill -9 of one in the middle of a load.

Its partitions move to the other, which held their changelog as a standby (a warm table),
processing goes on, and every command is applied once.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from confluent_kafka.admin import AdminClient

from eventpipe.settings import Settings
from streams.admin import EVENTS_TABLE
from streams.topics import PURPOSE, changelog_topic
from tests.conftest import STACK, WORKER_READY, Process, _free_port, _wait
from tests.pipeline import Topics, applied_when_settled
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
def standby_workers(worker: Process, process_env: dict[str, str]) -> Iterator[Process]:
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
        second.stop(sig_kill=True)
        del worker.env["TABLE_STANDBY_REPLICAS"]  # the suite's default from its next start


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
        rows = conn.execute("SELECT event_name, version, count(*) FROM events"
                            " WHERE user_id = %s GROUP BY 1, 2", (user,)).fetchall()
        outcomes = conn.execute("SELECT count(*), count(DISTINCT command_id)"
                                " FROM command_outcomes WHERE user_id = %s", (user,)).fetchone()
    assignment = _assignment(settings)
    assert [_actives(a) for a in assignment.values()] == [{0, 1, 2}]
    assert worker.proc.poll() is None
    # Every event as its four commands say: none lost, none applied twice.
    assert rows == [(NAMES[-1], 4, EVENTS)]
    assert outcomes == (len(commands), len(commands))
    check = eventpipe("projections", "check")
    assert check.returncode == 0, check.stdout[-3000:]
    assert check.stdout.strip().endswith("0 differences")
