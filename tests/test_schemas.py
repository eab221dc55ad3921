"""Schemas in the registry: foreign clients, evolution, and refusal of incompatible changes."""

from __future__ import annotations

import copy
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from eventpipe.settings import Settings
from streams.codec import DecodeError
from streams.registry import local_schema, local_schema_str, register_all, registry_client
from streams.topics import ALL_TOPICS, PURPOSE
from tests.pipeline import Topics, java_partitioned
from tests.test_lifecycle_topics import STORE


def _produce_with_confluent(settings: Settings, schema_str: str, value: dict) -> None:
    serialize = AvroSerializer(
        registry_client(settings.schema_registry_url), schema_str,
        conf={"auto.register.schemas": False, "use.latest.version": False})
    producer = Producer(java_partitioned(settings))
    producer.produce(PURPOSE.name, key=value["eventId"].encode(),
                     value=serialize(value, SerializationContext(PURPOSE.name,
                                                                 MessageField.VALUE)))
    producer.flush(10)


def _envelope(event_id: str, command_id: str) -> dict:
    return {"commandId": command_id, "eventId": event_id, "userId": str(uuid.uuid4()),
            "occurredAt": int(time.time() * 1000),
            "payload": ("eventpipe.purpose.PurposeSelected", STORE)}


def test_a_command_from_confluents_serializer_is_applied(topics: Topics,
                                                         settings: Settings) -> None:
    event_id, command_id = str(uuid.uuid4()), str(uuid.uuid4())
    _produce_with_confluent(settings, local_schema_str(PURPOSE), _envelope(event_id, command_id))
    assert topics.outcome(command_id)["status"] == "ACCEPTED"
    assert topics.event(event_id)["storeName"] == STORE["storeName"]


def test_a_v2_message_with_a_new_optional_field_is_read_by_the_v1_worker(
        topics: Topics, settings: Settings) -> None:
    v2 = copy.deepcopy(local_schema(PURPOSE))
    v2["fields"].append({"name": "channelHint", "type": ["null", "string"], "default": None})
    v2_str = json.dumps(v2)
    client = registry_client(settings.schema_registry_url)
    assert client.test_compatibility(PURPOSE.subject, Schema(v2_str, "AVRO"))
    client.register_schema(PURPOSE.subject, Schema(v2_str, "AVRO"))
    event_id, command_id = str(uuid.uuid4()), str(uuid.uuid4())
    _produce_with_confluent(settings, v2_str,
                            {**_envelope(event_id, command_id), "channelHint": "v2"})
    assert topics.outcome(command_id)["status"] == "ACCEPTED"
    assert topics.event(event_id)["industry"] == STORE["industry"]


def test_the_registry_refuses_an_incompatible_change(settings: Settings) -> None:
    broken = copy.deepcopy(local_schema(PURPOSE))
    broken["fields"].append({"name": "mandatory", "type": "string"})  # no default: not BACKWARD
    schema = Schema(json.dumps(broken), "AVRO")
    client = registry_client(settings.schema_registry_url)
    assert client.get_compatibility(PURPOSE.subject) in ("BACKWARD", "BACKWARD_TRANSITIVE")
    assert not client.test_compatibility(PURPOSE.subject, schema)
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(PURPOSE.subject, schema)
    assert refused.value.http_status_code == 409


def test_schemas_check_reports_every_subject(settings: Settings) -> None:
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "eventpipe.cli", "schemas", "check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{PURPOSE.subject}: compatible" in result.stdout


def test_the_workers_plain_reads_and_writes_are_the_codecs_own(topics: Topics) -> None:
    """`read` and `write` (no uuid and timestamp logical types: the worker's hot path) give
    the same commands and the same bytes as `decode` and `encode`, over whole lifecycles."""
    from bench.load import lifecycle
    from streams.envelope import fact_record, outcome_record, to_command
    from streams.lifecycle import apply
    from streams.registry import record_namespace
    from streams.topics import DLQ, OUTCOME

    checked = 0
    for n in (0, 3, 9):  # published, rejected dates, abandoned
        state = None
        for planned in (p for phase in lifecycle(n) for p in phase):
            codec = topics.codecs[planned.spec.name]
            value = codec.encode({
                "commandId": str(uuid.uuid4()), "eventId": planned.event_id,
                "userId": planned.user_id, "occurredAt": int(time.time() * 1000),
                "payload": (f"{record_namespace(planned.spec)}.{planned.type}",
                            planned.payload)})
            command = to_command(codec.read(value))
            assert command == to_command(codec.decode(value))
            decision = apply(state, command)
            state = decision.state if decision.changed else state
            records = [fact_record(f, command.command_id) for f in decision.facts]
            records.append((OUTCOME, outcome_record(command, decision, 1_700_000_000_000)))
            for spec, record in records:
                out = topics.codecs[spec.name]
                assert out.write(record) == out.encode(record)
                checked += 1
    dead = {"topic": PURPOSE.name, "partition": 0, "offset": 1, "key": b"k", "value": b"v",
            "errorCode": "DECODE_ERROR", "errorMessage": "x", "failedAt": 1_700_000_000_000}
    assert topics.codecs[DLQ.name].write(dead) == topics.codecs[DLQ.name].encode(dead)
    assert checked > 30
    # A uuid spelled otherwise is read as decode reads it; a non-uuid is a decode error.
    codec = topics.codecs[PURPOSE.name]
    event_id = str(uuid.uuid4())
    upper = codec.encode({**_envelope(event_id, str(uuid.uuid4())),
                          "eventId": event_id.upper()})
    assert codec.read(upper)["eventId"] == uuid.UUID(event_id)
    with pytest.raises(DecodeError):
        codec.read(codec.encode({**_envelope(event_id, str(uuid.uuid4())),
                                 "payload": ("eventpipe.purpose.PurposeSelected",
                                             {**STORE, "storeId": "not-a-uuid"})}))


def test_processes_starting_together_all_register_on_a_fresh_registry(
        settings: Settings) -> None:
    # A worker and an API starting at once both create each subject's compatibility rule;
    # Apicurio answered the slower 409, and that process did not start.
    url = settings.schema_registry_url
    for spec in ALL_TOPICS:
        httpx.delete(f"{url}/config/{spec.subject}").raise_for_status()
    with ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(lambda _: register_all(url), range(4)))
    assert all(found == ids[0] for found in ids) and len(ids[0]) == len(ALL_TOPICS)
    client = registry_client(url)
    assert {client.get_compatibility(spec.subject) for spec in ALL_TOPICS} == {"BACKWARD"}
