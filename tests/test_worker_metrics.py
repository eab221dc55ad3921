"""The worker's /metrics tells what it did."""

from __future__ import annotations

import uuid

import httpx
from prometheus_client.parser import text_string_to_metric_families

from streams.topics import PURPOSE
from tests.conftest import Process
from tests.pipeline import Topics
from tests.test_lifecycle_topics import STORE


def _samples(worker: Process) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    url = f"http://127.0.0.1:{worker.env['WORKER_WEB_PORT']}/metrics"
    text = httpx.get(url, timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_messages_rejections_and_sink_writes(topics: Topics,
                                                           worker: Process) -> None:
    before = _samples(worker)
    user = str(uuid.uuid4())
    topics.apply(PURPOSE, str(uuid.uuid4()), user, "PurposeSelected", STORE)
    topics.apply(PURPOSE, str(uuid.uuid4()), user, "DraftDiscarded", {"reason": None})
    after = _samples(worker)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert grew("eventpipe_messages_in_total", topic=PURPOSE.name) >= 2
    assert grew("eventpipe_messages_out_total", topic="event.outcome.v1") >= 2
    assert grew("eventpipe_rejections_total", code="EVENT_005") >= 1
    assert grew("eventpipe_sink_records_total", store="postgres") >= 1
    assert grew("eventpipe_batch_seconds_count") >= 1
    assert grew("eventpipe_batch_records_sum") >= 2
    assert after[("eventpipe_sink_down", (("store", "redis"),))] == 0
