"""`eventpipe projector` as a process of its own: it projects, and SIGTERM stops it cleanly.

A projector stopped by SIGTERM (docker stop, systemd, a deploy) must commit what it wrote and
leave its consumer group: otherwise its successor's join waits out the dead member's session
(seconds in which nothing is projected) and replays what was already written. It runs with an
app id of its own, so it reads its own (empty) changelog and the shared outcome topic beside
the session worker's embedded projector without taking that one's partitions.
"""

from __future__ import annotations

import signal
import uuid

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from eventpipe.settings import Settings
from streams.topics import OUTCOME
from tests.conftest import Process, _wait
from tests.kafka_helpers import end_offsets


def _members(admin: AdminClient, group: str) -> int:
    description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    return len(description.members)


def _committed(settings: Settings, group: str, topic: str, partitions: list[int]) -> dict[int, int]:
    reader = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": group,
                       "enable.auto.commit": False})
    try:
        found = reader.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return {tp.partition: tp.offset for tp in found}
    finally:
        reader.close()


def test_projector_process_commits_and_leaves_its_group_on_sigterm(
    stack: Settings, process_env: dict[str, str], worker: Process,
) -> None:
    app_id = f"projector-test-{uuid.uuid4().hex[:8]}"
    group = f"{app_id}-projector"
    proc = Process("test-projector", ["projector"], {**process_env, "APP_ID": app_id})
    proc.log.unlink(missing_ok=True)
    proc.start()
    admin = AdminClient({"bootstrap.servers": stack.kafka_bootstrap_servers})
    try:
        _wait("the projector in its group", lambda: _members(admin, group) == 1, 120,
              proc.proc, proc.log)
        # It reads the outcome topic to its end, writes it and commits (idle, it commits
        # what it wrote).
        ends = end_offsets(stack, OUTCOME.name)
        _wait("the projector's commits to reach the outcome topic's end",
              lambda: all(o >= ends[p] for p, o in
                          _committed(stack, group, OUTCOME.name, list(ends)).items()),
              120, proc.proc, proc.log)

        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(timeout=30) == 0, proc.log.read_text()[-2000:]
        # Left at once: a member that just died would stay listed until its session ran out.
        assert _members(admin, group) == 0
    finally:
        proc.stop(sig_kill=True)
