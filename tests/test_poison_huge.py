"""Issue 8.5, the huge and the unstorable: each ends in the DLQ with its reason (the DLQ
keeping a bounded part of it), and the next valid message is applied."""

from __future__ import annotations

import os
import time
import uuid

from eventpipe.settings import Settings
from streams.envelope import MAX_COMMAND_BYTES, MAX_KEY_BYTES
from streams.topics import DLQ, PURPOSE
from tests.kafka_helpers import read_avro, window_start
from tests.pipeline import Topics
from tests.test_lifecycle_topics import STORE

HUGE = 900 * 1024  # under the broker's 1 MB message limit, far over any command


def _envelope(topics: Topics, event_id: str, user: str, store: dict[str, object]) -> bytes:
    return topics.codecs[PURPOSE.name].encode({
        "commandId": str(uuid.uuid4()), "eventId": event_id, "userId": user,
        "occurredAt": int(time.time() * 1000),
        "payload": ("eventpipe.purpose.PurposeSelected", store)})


def test_huge_and_unstorable_messages_are_dead_lettered_and_the_next_applied(
        topics: Topics, settings: Settings, worker) -> None:
    since = window_start()
    user = str(uuid.uuid4())
    event_id = str(uuid.uuid4())
    key = event_id.encode()
    blob = os.urandom(HUGE)
    huge_field = _envelope(topics, event_id, user, {**STORE, "storeName": "가" * (HUGE // 3)})
    nul_field = _envelope(topics, event_id, user, {**STORE, "address": "부산\x00시"})
    long_key = b"k" * (2 * MAX_KEY_BYTES)
    small = _envelope(topics, event_id, user, STORE)
    sent = [(key, blob), (key, huge_field), (key, nul_field), (long_key, small)]
    for k, v in sent:
        topics.raw(PURPOSE.name, k, v)
    command_id = topics.send(PURPOSE, event_id, user, "PurposeSelected", STORE)

    assert topics.outcome(command_id)["status"] == "ACCEPTED"
    assert topics.event(event_id)["address"] == STORE["address"]
    assert len(huge_field) > HUGE

    def letters() -> dict[tuple[bytes, bytes], dict]:
        """The DLQ records of this test, by the start of their value and key."""
        found = read_avro(settings, DLQ.name, since, lambda k, v: v["topic"] == PURPOSE.name
                          and k in (key, long_key[:MAX_KEY_BYTES]), timeout=10)
        return {(v["value"][:64], v["key"][:8]): v for _, v in found}

    deadline = time.monotonic() + 60
    by_value = letters()
    while len(by_value) < len(sent) and time.monotonic() < deadline:
        by_value = letters()
    assert len(by_value) == len(sent)
    for k, v in sent:
        letter = by_value[(v[:64], k[:8])]
        assert letter["offset"] >= 0
        if len(v) > MAX_COMMAND_BYTES or len(k) > MAX_KEY_BYTES:
            assert letter["errorCode"] == "TOO_LARGE"
            # What the DLQ keeps, and that it says so.
            assert letter["value"] == v[:MAX_COMMAND_BYTES]
            assert letter["key"] == k[:MAX_KEY_BYTES]
            assert f"value {len(v)} bytes" in letter["errorMessage"]
            assert f"they had {len(k)} and {len(v)}" in letter["errorMessage"]
        else:
            assert (letter["errorCode"], letter["value"], letter["key"]) == (
                "INVALID_TEXT", v, k)
    # The worker lived through all of it.
    assert worker.proc.poll() is None
