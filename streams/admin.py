"""Create the pipeline's topics before anything uses them (idempotent), and refuse to start
on topics that are not co-partitioned.

Faust would create its changelog itself, but the projector may start first and must not
trigger broker auto-creation of an uncompacted changelog, so every topic is made here. The
processor writes an event's state to the changelog partition its commands came from
(docs/decisions/0001), so the command topics and the changelog must have one partition count.

A topic just made is not described at once: while the broker elects its leaders, its
metadata has an error and no partitions (on a broker busy deleting topics, for seconds). The
check waits until every topic is described before it compares. The metadata is read for all
topics, never for named ones, which a broker with `auto.create.topics.enable` would create
with its defaults.
"""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    ClusterMetadata,
    ConfigResource,
    NewTopic,
    TopicMetadata,
)
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from eventpipe.settings import Settings
from streams.topics import ALL_TOPICS, COMMAND_TOPICS, changelog_topic

__all__ = ["EVENTS_TABLE", "NotCompacted", "NotCopartitioned", "TopicsNotReady", "TopicsUnfit",
           "ensure_topics", "existing_partitions"]

EVENTS_TABLE = "events"
READY_SECONDS = 30.0  # how long a topic just made may take to be described


def ensure_topics(settings: Settings) -> list[str]:
    """Create missing topics, wait until the broker describes them, and check that the
    command topics and the changelog are co-partitioned and the changelog compacted;
    returns the names created."""
    wanted = [
        NewTopic(spec.name, settings.topic_partitions, 1) for spec in ALL_TOPICS
    ] + [
        NewTopic(
            changelog_topic(settings.app_id, EVENTS_TABLE),
            settings.topic_partitions,
            1,
            config={"cleanup.policy": "compact"},
        )
    ]
    together = [spec.name for spec in COMMAND_TOPICS] + [wanted[-1].topic]
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    created = _create_missing(admin, wanted)
    retrying = Retrying(retry=retry_if_exception_type(TopicsNotReady),
                        stop=stop_after_delay(READY_SECONDS), wait=wait_fixed(0.2), reraise=True)
    counts = retrying(lambda: _partition_counts(admin.list_topics(timeout=30), together))
    if len(set(counts.values())) != 1:
        raise NotCopartitioned(counts)
    _check_compacted(admin, wanted[-1].topic)
    return created


def _check_compacted(admin: AdminClient, changelog: str) -> None:
    """A changelog made by someone else (by hand, or auto-created by a client that named it)
    may delete old records by time: the table's recovery would then lose the events not
    written for a week."""
    resource = ConfigResource("topic", changelog)
    policy = admin.describe_configs([resource])[resource].result(timeout=30)["cleanup.policy"]
    if "compact" not in str(policy.value).split(","):
        raise NotCompacted(changelog, str(policy.value))


def existing_partitions(bootstrap_servers: str, topic: str) -> list[int] | None:
    """The topic's partitions, or None if the broker does not describe it (no such topic, or
    one it is still making); read from every topic's metadata, so that asking never creates
    it."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    described = admin.list_topics(timeout=30).topics.get(topic)
    if described is None or _not_described(described) is not None:
        return None
    return sorted(described.partitions)


def _not_described(topic: TopicMetadata | None) -> str | None:
    """Why the broker does not describe the topic yet, or None once it does."""
    if topic is None:
        return "not listed yet"
    if topic.error or not topic.partitions:
        return str(topic.error or "no partitions yet")
    return None


def _create_missing(admin: AdminClient, wanted: list[NewTopic]) -> list[str]:
    existing = admin.list_topics(timeout=30).topics
    missing = [t for t in wanted if t.topic not in existing]
    created: list[str] = []
    for name, future in (admin.create_topics(missing) if missing else {}).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            # a concurrent starter made it
    return created


def _partition_counts(metadata: ClusterMetadata, names: list[str]) -> dict[str, int]:
    """Each topic's partition count, once the broker describes every one of them."""
    waiting = {name: why for name in names
               if (why := _not_described(metadata.topics.get(name))) is not None}
    if waiting:
        raise TopicsNotReady(waiting)
    return {name: len(metadata.topics[name].partitions) for name in names}


class TopicsUnfit(RuntimeError):
    """The topics are not fit to start on; the message says which and why."""


class NotCopartitioned(TopicsUnfit):
    def __init__(self, counts: dict[str, int]) -> None:
        listed = ", ".join(f"{topic} {n}" for topic, n in sorted(counts.items()))
        super().__init__(f"the command topics and the changelog must have one partition count"
                         f" (an event's commands and its state share a partition); found"
                         f" {listed}. Recreate them with TOPIC_PARTITIONS partitions.")


class NotCompacted(TopicsUnfit):
    def __init__(self, changelog: str, policy: str) -> None:
        super().__init__(f"the changelog {changelog} has cleanup.policy={policy}: the broker would"
                         " delete old states. Make it compacted (kafka-configs.sh --alter"
                         f" --entity-type topics --entity-name {changelog} --add-config"
                         " cleanup.policy=compact) or delete it before the first start.")


class TopicsNotReady(TopicsUnfit):
    def __init__(self, waiting: dict[str, str]) -> None:
        listed = ", ".join(f"{topic} ({why})" for topic, why in sorted(waiting.items()))
        super().__init__(f"topics the broker did not describe within {READY_SECONDS:.0f} s:"
                         f" {listed}")
