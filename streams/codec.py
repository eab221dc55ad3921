"""Confluent wire format with fastavro: magic byte 0, 4-byte big-endian schema id, Avro body.

Decoding fetches the writer's schema by id (once, then cached) and resolves it against the
reader's schema from `schemas/`, so a worker on v1 reads a v2 message that added a field.
"""

from __future__ import annotations

import io
import json
import struct
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from streams.registry import local_schema, register_all, registry_client
from streams.topics import ALL_TOPICS, TopicSpec

__all__ = ["AvroCodec", "DecodeError", "RegistryUnavailable", "register_codecs"]

_HEADER = struct.Struct(">bI")
_MAGIC = 0


class DecodeError(Exception):
    """The bytes can never be decoded: the message belongs in the DLQ."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class RegistryUnavailable(Exception):
    """The registry did not answer: retry later, never dead-letter for this."""


class AvroCodec:
    """Encoder/decoder for one topic's value schema."""

    def __init__(self, spec: TopicSpec, client: SchemaRegistryClient, schema_id: int) -> None:
        self.spec = spec
        self.schema_id = schema_id
        self._client = client
        self._reader = parse_schema(local_schema(spec))
        self._writers: dict[int, Any] = {schema_id: self._reader}

    def encode(self, record: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        buf.write(_HEADER.pack(_MAGIC, self.schema_id))
        schemaless_writer(buf, self._reader, record)
        return buf.getvalue()

    def decode(self, data: bytes | None) -> dict[str, Any]:
        if not data or len(data) < _HEADER.size:
            raise DecodeError("DECODE_ERROR", "empty or shorter than the wire-format header")
        magic, schema_id = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            raise DecodeError("DECODE_ERROR", f"magic byte {magic}, expected {_MAGIC}")
        writer = self._writer_schema(schema_id)
        body = io.BytesIO(data)
        body.seek(_HEADER.size)
        try:
            record = schemaless_reader(
                body,
                writer,
                None if writer is self._reader else self._reader,
                return_record_name=True,
                return_record_name_override=True,
            )
        except Exception as exc:  # fastavro raises many types for bad bytes
            raise DecodeError("DECODE_ERROR", f"{type(exc).__name__}: {exc}") from exc
        if body.tell() != len(data):
            raise DecodeError("DECODE_ERROR", f"{len(data) - body.tell()} trailing bytes")
        return record

    def _writer_schema(self, schema_id: int) -> Any:
        writer = self._writers.get(schema_id)
        if writer is not None:
            return writer
        # A blocking call, but only once per schema id a process ever sees.
        try:
            schema = self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                reason = f"schema id {schema_id} is not registered"
                raise DecodeError("UNKNOWN_SCHEMA", reason) from exc
            raise RegistryUnavailable(str(exc)) from exc
        except Exception as exc:  # connection refused, timeouts
            raise RegistryUnavailable(str(exc)) from exc
        if schema.schema_type not in (None, "AVRO"):
            raise DecodeError("UNKNOWN_SCHEMA", f"schema id {schema_id} is {schema.schema_type}")
        try:
            writer = parse_schema(json.loads(schema.schema_str))
        except Exception as exc:
            raise DecodeError("UNKNOWN_SCHEMA", f"schema id {schema_id} unusable: {exc}") from exc
        self._writers[schema_id] = writer
        return writer


def register_codecs(url: str, compatibility: str = "BACKWARD") -> dict[str, AvroCodec]:
    """Register every topic's schema, then a codec per topic name that writes with its id."""
    ids = register_all(url, compatibility)
    client = registry_client(url)
    return {spec.name: AvroCodec(spec, client, ids[spec.subject]) for spec in ALL_TOPICS}
