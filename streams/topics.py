"""Every topic of the pipeline, declared once: name, key, schema file, partitions.

Agents, the projector, the API and the tests refer to these handles, never to raw names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "AI_JOB",
    "ALL_TOPICS",
    "COMMAND_TOPICS",
    "CONTENT_JOB",
    "DISTRIBUTION_JOB",
    "DLQ",
    "EVENT_TOPIC",
    "IMAGE",
    "OUTCOME",
    "PUBLISH",
    "PURPOSE",
    "RECOMMENDATION",
    "SCHEMA_DIR",
    "TopicSpec",
    "changelog_topic",
]

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    schema_file: str  # under schemas/, resolved with its named types by fastavro
    key: str  # what the message key holds
    doc: str

    @property
    def subject(self) -> str:
        """TopicNameStrategy: the value schema is registered as `<topic>-value`."""
        return f"{self.name}-value"

    @property
    def schema_path(self) -> Path:
        return SCHEMA_DIR / self.schema_file


PURPOSE = TopicSpec(
    "event.purpose.v1", "event.purpose.v1.avsc", "eventId",
    "PurposeSelected, DraftUpdated, DraftDiscarded commands from the API",
)
RECOMMENDATION = TopicSpec(
    "event.recommendation.v1", "event.recommendation.v1.avsc", "eventId",
    "AI recommendation requests and selections (API); progress, results, failures (AI worker)",
)
IMAGE = TopicSpec(
    "event.image.v1", "event.image.v1.avsc", "eventId",
    "image requests and selections (API); progress, results, failures (content worker)",
)
PUBLISH = TopicSpec(
    "event.publish.v1", "event.publish.v1.avsc", "eventId",
    "publish and end requests (API); DistributionCompleted (distribution worker)",
)
AI_JOB = TopicSpec(
    "ai-job-topic", "ai-job-topic.avsc", "eventId", "AI job requests for the AI worker",
)
CONTENT_JOB = TopicSpec(
    "content-job-topic", "content-job-topic.avsc", "eventId",
    "image job requests for the content worker",
)
DISTRIBUTION_JOB = TopicSpec(
    "distribution-job-topic", "distribution-job-topic.avsc", "eventId",
    "distribution requests for the distribution worker",
)
EVENT_TOPIC = TopicSpec(
    "event-topic", "event-topic.avsc", "eventId",
    "EventDraftCreated and EventCreated facts for subscribers",
)
OUTCOME = TopicSpec(
    "event.outcome.v1", "event.outcome.v1.avsc", "eventId",
    "accepted/rejected outcome of every command, by commandId",
)
DLQ = TopicSpec(
    "event.dlq.v1", "event.dlq.v1.avsc", "source key",
    "messages that could not be decoded or applied, with the reason",
)

COMMAND_TOPICS: tuple[TopicSpec, ...] = (PURPOSE, RECOMMENDATION, IMAGE, PUBLISH)
ALL_TOPICS: tuple[TopicSpec, ...] = (
    *COMMAND_TOPICS, EVENT_TOPIC, AI_JOB, CONTENT_JOB, DISTRIBUTION_JOB, OUTCOME, DLQ,
)


def changelog_topic(app_id: str, table: str) -> str:
    """Faust names a table's changelog `<app id>-<table>-changelog`."""
    return f"{app_id}-{table}-changelog"
