"""State survives the worker: the table comes back from its changelog; jobs time out."""

from __future__ import annotations

import shutil
import time
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from eventpipe.settings import Settings
from streams.topics import PURPOSE, RECOMMENDATION
from tests.conftest import WORKER_READY, Process
from tests.kafka_helpers import window_start
from tests.oracle import verify
from tests.pipeline import Topics
from tests.test_lifecycle_topics import new_draft

UPDATE = {"eventName": None, "description": None, "startDate": None, "endDate": None,
          "channels": None}


@pytest.mark.parametrize(("sig_kill", "lose_store"), [(False, False), (True, False), (True, True)],
                         ids=["stop", "kill-9", "kill-9-and-lost-local-store"])
def test_restarted_worker_recovers_the_table_from_its_changelog(
        topics: Topics, worker: Process, settings: Settings, sig_kill: bool,
        lose_store: bool) -> None:
    since = window_start()
    user = str(uuid.uuid4())
    event_id = new_draft(topics, user)
    topics.apply(PURPOSE, event_id, user, "DraftUpdated", {**UPDATE, "eventName": "전"})
    assert topics.version(event_id) == 2
    # More events on every partition, so a recovery fetches runs of records to store.
    others = [new_draft(topics, user) for _ in range(12)]

    if lose_store:
        worker.stop(sig_kill=True)
        shutil.rmtree(worker.env["DATA_DIR"])  # the RocksDB files are gone
    worker.restart(WORKER_READY, sig_kill=sig_kill)

    # Only a recovered state knows this event and its version; a lost one says EVENT_005.
    after = topics.apply(PURPOSE, event_id, user, "DraftUpdated", {**UPDATE, "eventName": "후"})
    assert after["status"] == "ACCEPTED", after
    assert int(after["eventVersion"]) == 3
    doc = topics.event(event_id)
    assert (doc["eventName"], doc["storeName"]) == ("후", "해피카페")
    for other in others:
        outcome = topics.apply(PURPOSE, other, user, "DraftUpdated", UPDATE)
        assert (outcome["status"], int(outcome["eventVersion"])) == ("ACCEPTED", 2), outcome
    if lose_store:
        # The whole changelog was read back, most of it stored in bulk (streams/faust_seam).
        assert _restored_in_bulk(worker) > 0
    report = verify(settings, since, events=[event_id, *others], redis_client=topics.rds,
                    codecs=topics.codecs)
    assert report.ok, str(report)
    assert (report.counts["accepted"], report.counts["commands"]) == (27, 27)


def _restored_in_bulk(worker: Process) -> float:
    url = f"http://127.0.0.1:{worker.env['WORKER_WEB_PORT']}/metrics"
    samples = {s.name: s.value for family in text_string_to_metric_families(
        httpx.get(url, timeout=10).text) for s in family.samples}
    return samples["eventpipe_changelog_restored_in_bulk_total"]


def test_an_unfinished_job_fails_by_timeout(topics: Topics) -> None:
    user = str(uuid.uuid4())
    event_id = new_draft(topics, user)
    job = str(uuid.uuid4())
    topics.apply(RECOMMENDATION, event_id, user, "RecommendationRequested", {"jobId": job})
    deadline = time.monotonic() + 60
    status: dict[str, str] = {}
    while time.monotonic() < deadline:
        status = topics.rds.hgetall(f"job:status:{job}")
        if status.get("status") == "FAILED":
            break
        time.sleep(0.5)
    assert status["status"] == "FAILED"
    assert status["error"].startswith("TIMEOUT")
    # A report after the timeout changes nothing: the job stays FAILED.
    late = topics.apply(RECOMMENDATION, event_id, user, "RecommendationJobProgress",
                        {"jobId": job, "progress": 90})
    assert late["status"] == "ACCEPTED"
    assert topics.rds.hgetall(f"job:status:{job}")["status"] == "FAILED"
