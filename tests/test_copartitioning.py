"""The worker refuses to start on topics that are not co-partitioned: an event's commands and
its state must share a partition, or its state would be written where no command of it is
read (the processor used to crash on its first delivery instead)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from eventpipe.settings import Settings
from streams.admin import EVENTS_TABLE
from streams.topics import changelog_topic
from tests.conftest import ROOT


@pytest.fixture
def app_id_with_a_narrow_changelog(process_env: dict[str, str],
                                   settings: Settings) -> Iterator[str]:
    app_id = f"copartition-{uuid.uuid4().hex[:8]}"
    topic = changelog_topic(app_id, EVENTS_TABLE)
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    narrower = max(1, settings.topic_partitions - 1)
    assert narrower != settings.topic_partitions
    for future in admin.create_topics([NewTopic(topic, narrower, 1)]).values():
        future.result()
    yield app_id
    for future in admin.delete_topics([topic]).values():
        future.result()


def test_a_changelog_with_another_partition_count_stops_the_worker_with_a_message(
        process_env: dict[str, str], app_id_with_a_narrow_changelog: str) -> None:
    env = {**process_env, "APP_ID": app_id_with_a_narrow_changelog}
    run = subprocess.run([sys.executable, "-m", "eventpipe.cli", "worker"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "must have one partition count" in run.stderr
    assert f"{app_id_with_a_narrow_changelog}-events-changelog" in run.stderr
    assert "Traceback" not in run.stderr
