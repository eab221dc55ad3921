"""Schemas in the registry: foreign clients, evolution, and refusal of incompatible changes."""

from __future__ import annotations

import copy
import json
import time
import uuid

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from eventpipe.settings import Settings
from streams.registry import local_schema, local_schema_str, registry_client
from streams.topics import PURPOSE
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
