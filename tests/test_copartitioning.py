"""The worker's start-up check of its topics: it refuses topics that are not co-partitioned
(an event's commands and its state must share a partition, or its state would be written
where no command of it is read; the processor used to crash on its first delivery instead)
and a changelog that is not compacted, and it waits for topics the broker has just made."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

from confluent_kafka.admin import AdminClient, NewTopic

from eventpipe.settings import Settings
from streams.admin import EVENTS_TABLE, ensure_topics
from streams.topics import changelog_topic
from tests.conftest import ROOT


@contextlib.contextmanager
def _an_app_whose_changelog_is(settings: Settings, prefix: str, partitions: int,
                               config: dict[str, str] | None = None) -> Iterator[str]:
    """An app id whose changelog someone else made, as given."""
    app_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
    topic = changelog_topic(app_id, EVENTS_TABLE)
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    for future in admin.create_topics([NewTopic(topic, partitions, 1,
                                                config=config or {})]).values():
        future.result()
    try:
        yield app_id
    finally:
        for future in admin.delete_topics([topic]).values():
            future.result()


def _refused_start(process_env: dict[str, str], app_id: str) -> str:
    """The worker's start for `app_id`, which must fail with a message, not a traceback."""
    run = subprocess.run([sys.executable, "-m", "eventpipe.cli", "worker"],
                         env={**process_env, "APP_ID": app_id}, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    return run.stderr


def test_a_changelog_with_another_partition_count_stops_the_worker_with_a_message(
        process_env: dict[str, str], settings: Settings) -> None:
    narrower = max(1, settings.topic_partitions - 1)
    assert narrower != settings.topic_partitions
    with _an_app_whose_changelog_is(settings, "copartition", narrower) as app_id:
        stderr = _refused_start(process_env, app_id)
    assert "must have one partition count" in stderr
    assert f"{app_id}-events-changelog" in stderr


def test_topics_made_again_while_the_broker_deletes_others_are_waited_for(
        stack: Settings) -> None:
    """As `make bench` starts a worker after deleting every topic: the changelog, made again
    while the broker is still deleting a dozen topics, is described for a while with no
    partitions. The start waits for it rather than taking it for a topic of 0 partitions
    (the worker used to exit with "found ... events-changelog 0")."""
    admin = AdminClient({"bootstrap.servers": stack.kafka_bootstrap_servers})
    app = Settings(app_id=f"remade-{uuid.uuid4().hex[:8]}", topic_partitions=stack.topic_partitions,
                   kafka_bootstrap_servers=stack.kafka_bootstrap_servers)
    changelog = changelog_topic(app.app_id, EVENTS_TABLE)
    for attempt in range(5):
        scratch = [f"{app.app_id}-scratch-{attempt}-{i}" for i in range(12)]
        for future in admin.create_topics(
                [NewTopic(name, stack.topic_partitions, 1) for name in scratch]).values():
            future.result()
        ensure_topics(app)
        for future in admin.delete_topics([*scratch, changelog]).values():
            future.result()
        while {*scratch, changelog} & set(admin.list_topics(timeout=30).topics):
            time.sleep(0.2)

        assert ensure_topics(app) == [changelog]
        described = admin.list_topics(timeout=30).topics[changelog]
        assert described.error is None
        assert len(described.partitions) == stack.topic_partitions
        admin.delete_topics([changelog])
        while changelog in admin.list_topics(timeout=30).topics:
            time.sleep(0.2)


def test_an_uncompacted_changelog_stops_the_worker_with_a_message(
        process_env: dict[str, str], settings: Settings) -> None:
    """As a client that named it would have had the broker auto-create it: its old states
    would be deleted by time, and a restart would restore a table without the events not
    written for a week."""
    with _an_app_whose_changelog_is(settings, "uncompacted", settings.topic_partitions,
                                    {"cleanup.policy": "delete"}) as app_id:
        stderr = _refused_start(process_env, app_id)
    assert f"{app_id}-events-changelog has cleanup.policy=delete" in stderr
    assert "cleanup.policy=compact" in stderr  # how to put it right
