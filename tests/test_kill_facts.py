"""A worker killed with -9 in the middle of job requests and publishes loses no fact: every
job request, EventCreated and distribution request is on its topic afterwards, read to the
end offsets, once per command or more (at-least-once), never zero."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import psycopg
import pytest

from eventpipe.settings import Settings
from streams.topics import (
    AI_JOB,
    CONTENT_JOB,
    DISTRIBUTION_JOB,
    EVENT_TOPIC,
    IMAGE,
    PUBLISH,
    PURPOSE,
    RECOMMENDATION,
)
from tests.conftest import WORKER_READY, Process
from tests.kafka_helpers import read_to_end, window_start
from tests.oracle import log_marks, settle, verify
from tests.pipeline import Topics, settled
from tests.test_lifecycle_topics import STORE, TRENDS, recommendations
from tests.test_projections import eventpipe

EVENTS = 800
CHUNKS = 16


def _at_version(conn: psycopg.Connection, user: str, version: int, events: int) -> int:
    return settled(conn, "SELECT count(*) FROM events WHERE user_id = %s AND version = %s",
                   (user, version), events)


@pytest.mark.chaos
@pytest.mark.timeout(900)
def test_kill_9_in_the_middle_of_jobs_and_publishes_loses_no_fact(
        topics: Topics, worker: Process, settings: Settings) -> None:
    since = window_start()
    marks = log_marks([worker.log])
    user = str(uuid.uuid4())
    events = [str(uuid.uuid4()) for _ in range(EVENTS)]
    update = {"eventName": None, "description": None, "startDate": date(2026, 12, 1),
              "endDate": date(2026, 12, 31), "channels": ["INSTAGRAM", "KAKAO_CHANNEL"]}
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        # Drafts first, then their jobs answered and chosen: commands on different topics
        # are not ordered by Kafka, so each stage waits for the one before, as a user does.
        topics.send_many([(PURPOSE, e, user, "PurposeSelected", STORE) for e in events])
        assert _at_version(conn, user, 1, EVENTS) == EVENTS
        ready = []
        for e in events:
            recs, job, image_job = recommendations(), str(uuid.uuid4()), str(uuid.uuid4())
            image = {"imageId": str(uuid.uuid4()), "imageUrl": "http://img/1.png",
                     "style": "SIMPLE", "platform": "INSTAGRAM"}
            ready += [
                (RECOMMENDATION, e, user, "RecommendationRequested", {"jobId": job}),
                (RECOMMENDATION, e, user, "RecommendationsGenerated",
                 {"jobId": job, "trendAnalysis": TRENDS, "recommendations": recs}),
                (RECOMMENDATION, e, user, "RecommendationSelected",
                 {"recommendationId": recs[0]["recommendationId"], "eventName": None,
                  "description": None}),
                (IMAGE, e, user, "ImageGenerationRequested",
                 {"jobId": image_job, "styles": ["SIMPLE"], "platforms": ["INSTAGRAM"]}),
                (IMAGE, e, user, "ImagesGenerated", {"jobId": image_job, "images": [image]}),
                (IMAGE, e, user, "ImageSelected", {"imageId": image["imageId"]}),
                (PURPOSE, e, user, "DraftUpdated", update),
            ]
        topics.send_many(ready)
        assert _at_version(conn, user, 8, EVENTS) == EVENTS
        # Half request two more jobs, half publish, sent in chunks for a while; the worker
        # is killed while they come (and started again), so it dies in the middle of them.
        jobs, publishing = events[: EVENTS // 2], events[EVENTS // 2:]
        last = [
            *[(RECOMMENDATION, e, user, "RecommendationRequested", {"jobId": str(uuid.uuid4())})
              for e in jobs],
            *[(IMAGE, e, user, "ImageGenerationRequested",
               {"jobId": str(uuid.uuid4()), "styles": ["FANCY"], "platforms": ["INSTAGRAM"]})
              for e in jobs],
            *[(PUBLISH, e, user, "PublishRequested", {"channels": None}) for e in publishing]]
        chunks = [last[i::CHUNKS] for i in range(CHUNKS)]  # each event's commands in order
        halfway = threading.Event()

        def produce() -> None:
            sender = Topics(settings, topics.rds)
            for number, chunk in enumerate(chunks):
                sender.send_many(chunk)
                if number == CHUNKS // 2:
                    halfway.set()
                time.sleep(0.05)

        with ThreadPoolExecutor(1) as pool:
            sent = pool.submit(produce)
            assert halfway.wait(120)
            # The jobs requested are never answered: the restarted worker must not time
            # them out while the projections are compared with the changelog below.
            worker.env["JOB_TIMEOUT_SECONDS"] = "3600"
            worker.restart(WORKER_READY, sig_kill=True)
            sent.result()
        assert _at_version(conn, user, 9, len(publishing)) == len(publishing)
        assert _at_version(conn, user, 10, len(jobs)) == len(jobs)

    def facts(topic: str, name: str | None = None) -> Counter[str]:
        """Records per eventId (the key) on `topic`; on event-topic, of one fact only."""
        decode = topics.codecs[topic].decode
        return Counter(key.decode() for _, key, value in read_to_end(settings, topic, since)
                       if key and (name is None or decode(value)["payload"][0].endswith(name)))

    def lost(counted: Counter[str], expected: dict[str, int]) -> dict[str, int]:
        return {e: n for e, n in expected.items() if counted.get(e, 0) < n}

    every = dict.fromkeys(events, 1)
    assert lost(facts(EVENT_TOPIC.name, "EventDraftCreated"), every) == {}
    assert lost(facts(AI_JOB.name), {**every, **dict.fromkeys(jobs, 2)}) == {}
    assert lost(facts(CONTENT_JOB.name), {**every, **dict.fromkeys(jobs, 2)}) == {}
    assert lost(facts(EVENT_TOPIC.name, "EventCreated"), dict.fromkeys(publishing, 1)) == {}
    assert lost(facts(DISTRIBUTION_JOB.name), dict.fromkeys(publishing, 1)) == {}
    # Then every fact field by field, every state, outcome and projection, by the oracle.
    settle(settings)
    report = verify(settings, since, events=events, logs=marks, redis_client=topics.rds,
                    codecs=topics.codecs)
    assert report.ok, str(report)
    assert report.counts["accepted"] == EVENTS * 8 + len(last)
    assert report.counts["facts"] == EVENTS * 3 + 2 * len(jobs) + 2 * len(publishing)
    check = eventpipe("projections", "check")
    assert check.returncode == 0, check.stdout[-3000:]


@pytest.fixture(autouse=True)
def suite_job_timeout(worker: Process) -> Iterator[None]:
    """The suite's worker as the other tests expect it (a short job timeout) afterwards."""
    suite = worker.env["JOB_TIMEOUT_SECONDS"]
    yield
    if worker.env["JOB_TIMEOUT_SECONDS"] != suite:
        worker.env["JOB_TIMEOUT_SECONDS"] = suite
        worker.restart(WORKER_READY)
