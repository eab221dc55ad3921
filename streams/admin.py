"""Create the pipeline's topics before anything uses them (idempotent), and refuse to start
on topics that are not co-partitioned.

Faust would create its changelog itself, but the projector may start first and must not
trigger broker auto-creation of an uncompacted changelog, so every topic is made here. The
processor writes an event's state to the changelog partition its commands came from
(docs/decisions/0001), so the command topics and the changelog must have one partition count.
"""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from eventpipe.settings import Settings
from streams.topics import ALL_TOPICS, COMMAND_TOPICS, changelog_topic

__all__ = ["EVENTS_TABLE", "NotCopartitioned", "ensure_topics"]

EVENTS_TABLE = "events"


async def ensure_topics(settings: Settings) -> list[str]:
    """Create missing topics; returns the names created."""
    wanted = [
        NewTopic(spec.name, settings.topic_partitions, 1) for spec in ALL_TOPICS
    ] + [
        NewTopic(
            changelog_topic(settings.app_id, EVENTS_TABLE),
            settings.topic_partitions,
            1,
            topic_configs={"cleanup.policy": "compact"},
        )
    ]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # a concurrent starter made them
        together = [spec.name for spec in COMMAND_TOPICS] + [wanted[-1].name]
        counts = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(together)}
        if len(set(counts.values())) != 1:
            raise NotCopartitioned(counts)
        return [t.name for t in missing]
    finally:
        await admin.close()


class NotCopartitioned(RuntimeError):
    def __init__(self, counts: dict[str, int]) -> None:
        listed = ", ".join(f"{topic} {n}" for topic, n in sorted(counts.items()))
        super().__init__(f"the command topics and the changelog must have one partition count"
                         f" (an event's commands and its state share a partition); found"
                         f" {listed}. Recreate them with TOPIC_PARTITIONS partitions.")
