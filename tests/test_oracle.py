"""The oracle itself: it passes on a healthy pipeline and names what was touched when a store,
a topic or the DLQ disagrees with the model (a test that cannot fail proves nothing)."""

from __future__ import annotations

import uuid

import psycopg
import redis

from eventpipe.settings import Settings
from sinks.redis import draft_key
from streams.topics import PURPOSE
from tests.kafka_helpers import window_start
from tests.oracle import Poison, verify
from tests.pipeline import Topics
from tests.test_lifecycle_topics import STORE, ready_draft

UPDATE = {"eventName": None, "description": None, "startDate": None, "endDate": None,
          "channels": None}


def test_the_oracle_agrees_with_a_healthy_pipeline_and_names_every_difference(
        topics: Topics, settings: Settings, pg: psycopg.Connection,
        rds: redis.Redis) -> None:
    since = window_start()
    user = str(uuid.uuid4())
    published = ready_draft(topics, user)
    topics.apply(PURPOSE, published, user, "DraftUpdated", {**UPDATE, "eventName": "둘"})
    rejected = topics.send(PURPOSE, str(uuid.uuid4()), user, "DraftUpdated", UPDATE)
    assert topics.outcome(rejected)["code"] == "EVENT_005"
    plain = str(uuid.uuid4())
    sent = [topics.send(PURPOSE, plain, user, "PurposeSelected", STORE)]
    topics.outcome(sent[0])
    # A command sent twice (a producer's retry) is decided once.
    sent.append(topics.send(PURPOSE, plain, user, "DraftUpdated",
                            {**UPDATE, "eventName": "셋"}))
    topics.send(PURPOSE, plain, user, "DraftUpdated", {**UPDATE, "eventName": "셋"},
                command_id=sent[-1])
    poison = Poison(PURPOSE.name, b"not avro at all", "DECODE_ERROR")
    topics.raw(PURPOSE.name, plain.encode(), poison.value)
    last = topics.send(PURPOSE, plain, user, "DraftUpdated", {**UPDATE, "description": "끝"})
    topics.outcome(last)
    assert topics.version(plain) == 3
    events = [published, plain]

    report = verify(settings, since, events=events, sent=[*sent, last], poison=[poison],
                    redis_client=rds)
    assert report.ok, str(report)
    assert report.counts["commands"] >= 12 and report.counts["facts"] >= 4

    # Without the poison it expects, the DLQ holds one message too many.
    report = verify(settings, since, events=events, redis_client=rds)
    assert not report.ok and any("unexpected" in d for d in report.differences), str(report)

    # A Redis draft gone within its TTL is lost; a PostgreSQL row changed behind the model's
    # back is a difference, and both events are named.
    other = str(uuid.uuid4())
    topics.apply(PURPOSE, other, user, "PurposeSelected", STORE)
    events.append(other)
    rds.delete(draft_key(plain))
    pg.execute("UPDATE events SET event_name = 'x' WHERE event_id = %s", (other,))
    report = verify(settings, since, events=events, poison=[poison], redis_client=rds)
    assert report.touched == {plain, other}, str(report)
    assert any(draft_key(plain) in line for line in report.lost), str(report)
    assert any("eventName" in line and other in line for line in report.differences)

    # A newer state projected puts both right again (and leaves the stores clean for the
    # suite's `projections check`).
    for event_id in (plain, other):
        topics.apply(PURPOSE, event_id, user, "DraftUpdated", {**UPDATE, "eventName": "복구"})
    report = verify(settings, since, events=events, poison=[poison], redis_client=rds)
    assert report.ok, str(report)
