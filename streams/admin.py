"""Create the pipeline's topics before anything uses them (idempotent).

Faust would create its changelog itself, but the projector may start first and must not
trigger broker auto-creation of an uncompacted changelog, so every topic is made here.
"""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from eventpipe.settings import Settings
from streams.topics import ALL_TOPICS, changelog_topic

__all__ = ["EVENTS_TABLE", "ensure_topics"]

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
        return [t.name for t in missing]
    finally:
        await admin.close()
