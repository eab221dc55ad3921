"""Poison goes to event.dlq.v1 with its reason, and the partition moves on."""

from __future__ import annotations

import struct
import time
import uuid

from eventpipe.settings import Settings
from streams.topics import DLQ, PURPOSE, RECOMMENDATION
from tests.kafka_helpers import read_avro, window_start
from tests.pipeline import Topics
from tests.test_lifecycle_topics import STORE, new_draft


def test_poison_is_dead_lettered_and_the_next_message_applied(
        topics: Topics, settings: Settings) -> None:
    since = window_start()
    event_id = str(uuid.uuid4())
    key = event_id.encode()
    user = str(uuid.uuid4())
    valid = topics.codecs[PURPOSE.name].encode({
        "commandId": str(uuid.uuid4()), "eventId": event_id, "userId": user,
        "occurredAt": int(time.time() * 1000),
        "payload": ("eventpipe.purpose.PurposeSelected", STORE)})
    other_schema = topics.codecs[RECOMMENDATION.name].encode({
        "commandId": str(uuid.uuid4()), "eventId": event_id, "userId": user,
        "occurredAt": int(time.time() * 1000),
        "payload": ("eventpipe.recommendation.RecommendationRequested",
                    {"jobId": str(uuid.uuid4())})})
    poison = {
        b"\x07garbage, not avro": "DECODE_ERROR",
        b"\x00" + struct.pack(">I", 987_654_321) + b"\x02abc": "UNKNOWN_SCHEMA",
        valid[: len(valid) // 2]: "DECODE_ERROR",  # truncated
        other_schema: "DECODE_ERROR",  # a valid body of another topic's schema
    }
    for value in poison:
        topics.raw(PURPOSE.name, key, value)
    topics.raw(PURPOSE.name, None, valid)  # no key
    topics.raw(PURPOSE.name, str(uuid.uuid4()).encode(), valid)  # key is not the eventId
    command_id = topics.send(PURPOSE, event_id, user, "PurposeSelected", STORE)

    assert topics.outcome(command_id)["status"] == "ACCEPTED"
    assert topics.event(event_id)["storeName"] == STORE["storeName"]
    letters = read_avro(settings, DLQ.name, since,
                        lambda k, v: v["topic"] == PURPOSE.name and (
                            v["value"] in poison or v["value"] == valid))
    codes = {bytes(v["value"]): v["errorCode"] for _, v in letters if v["value"] in poison}
    assert codes == {value: code for value, code in poison.items()}
    others = sorted(v["errorCode"] for _, v in letters if v["value"] == valid)
    assert others == ["KEY_MISMATCH", "NULL_KEY"]
    for _, letter in letters:
        assert letter["errorMessage"] and letter["offset"] >= 0


def test_a_result_for_an_unknown_job_is_dead_lettered(topics: Topics,
                                                      settings: Settings) -> None:
    since = window_start()
    user = str(uuid.uuid4())
    event_id = new_draft(topics, user)
    stray = str(uuid.uuid4())
    topics.send(RECOMMENDATION, event_id, user, "RecommendationJobProgress",
                {"jobId": stray, "progress": 10})
    after = topics.apply(RECOMMENDATION, event_id, user, "RecommendationRequested",
                         {"jobId": str(uuid.uuid4())})
    assert after["status"] == "ACCEPTED"
    letters = read_avro(settings, DLQ.name, since, lambda k, v: k == event_id.encode())
    assert [(v["topic"], v["errorCode"]) for _, v in letters] == [
        (RECOMMENDATION.name, "UNKNOWN_JOB")]
    assert stray in letters[0][1]["errorMessage"]
