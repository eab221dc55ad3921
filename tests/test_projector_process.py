"""`eventpipe projector` as a process of its own: it projects, and SIGTERM stops it cleanly.

A projector stopped by SIGTERM (docker stop, systemd, a deploy) must commit what it wrote and
leave its consumer group: otherwise its successor's join waits out the dead member's session
(seconds in which nothing is projected) and replays what was already written. It runs with an
app id of its own, so it reads its own (empty) changelog and the shared outcome topic beside
the session worker's embedded projector without taking that one's partitions.
"""

from __future__ import annotations

import asyncio
import signal
import uuid

from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as AioPartition
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from eventpipe.settings import Settings
from sinks.batch import Batch
from sinks.projector import Projector
from streams.codec import register_codecs
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


def test_a_batch_holding_a_partition_a_rebalance_took_is_not_waited_for(stack: Settings) -> None:
    # A rebalance during the batch's gathering took one of its partitions: how far behind
    # the batch is counts only the partitions still assigned (aiokafka asserts on the others;
    # once that stopped a projector mid-batch in a two-workers chaos run).
    async def behind() -> int:
        projector = Projector(stack, register_codecs(stack.schema_registry_url)[OUTCOME.name])
        kept, taken = AioPartition(OUTCOME.name, 0), AioPartition(OUTCOME.name, 1)
        projector.consumer = AIOKafkaConsumer(bootstrap_servers=stack.kafka_bootstrap_servers)
        await projector.consumer.start()
        try:
            projector.consumer.assign([kept])
            await projector.consumer.seek_to_end(kept)
            end = None
            for _ in range(50):  # a fetch response tells it the partition's end
                await projector.consumer.getmany(timeout_ms=200)
                if (end := projector.consumer.highwater(kept)) is not None:
                    break
            assert end is not None
            batch = Batch()
            batch.offsets = {kept: end - 1, taken: 0}
            return projector._behind(batch)
        finally:
            await projector.consumer.stop()
            await projector.redis.stop()

    assert asyncio.run(behind()) == 1
