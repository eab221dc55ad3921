"""Confluent wire format with fastavro: magic byte 0, 4-byte big-endian schema id, Avro body.

Decoding fetches the writer's schema by id (once, then cached) and resolves it against the
reader's schema from `schemas/`, so a worker on v1 reads a v2 message that added a field.
`read` decodes without the uuid and timestamp logical types (strings and epoch millis, as
the event states keep them), which costs a third of `decode` (docs/decisions/0009).
"""

from __future__ import annotations

import io
import json
import re
import struct
from collections.abc import Callable
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from streams.registry import local_schema, register_all, registry_client
from streams.topics import ALL_TOPICS, TopicSpec

__all__ = ["AvroCodec", "DecodeError", "RegistryUnavailable", "register_codecs"]

_HEADER = struct.Struct(">bI")
_MAGIC = 0
_PLAIN = frozenset({"uuid", "timestamp-millis"})  # read as their underlying string and long


# A uuid as the pipeline writes it (str(uuid.UUID)); any other spelling is read by `decode`.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
Check = Callable[[Any], bool]


def _uuid_check(schema: Any) -> Check | None:
    """For a schema with uuid fields, a check that every one of them holds a canonical uuid
    in a value read without logical types (fastavro's uuid reader checks it); else None."""
    if isinstance(schema, list):  # a union: records come as (name, value), others as is
        records = [b for b in schema if isinstance(b, dict) and b.get("type") == "record"]
        branches = {b["name"].rsplit(".", 1)[-1]: c for b in records
                    if (c := _uuid_check(b)) is not None}
        plain = [c for b in schema if b not in records and (c := _uuid_check(b)) is not None]
        if not branches and not plain:
            return None
        def union(value: Any) -> bool:
            if isinstance(value, tuple):
                check = branches.get(value[0].rsplit(".", 1)[-1])
                return check is None or check(value[1])
            if value is None:
                return True
            for check in plain:
                if not check(value):
                    return False
            return True
        return union
    if not isinstance(schema, dict):
        return None
    kind = schema.get("type")
    if schema.get("logicalType") == "uuid":
        match = _UUID.match
        return lambda value: value.__class__ is str and match(value) is not None
    if kind == "record":
        fields = [(f["name"], c) for f in schema["fields"]
                  if (c := _uuid_check(f["type"])) is not None]
        if not fields:
            return None

        def record(value: Any) -> bool:
            for name, check in fields:
                if not check(value[name]):
                    return False
            return True
        return record
    if kind == "array":
        item = _uuid_check(schema["items"])
        if item is None:
            return None

        def array(values: Any) -> bool:
            for value in values:
                if not item(value):
                    return False
            return True
        return array
    if isinstance(kind, (dict, list)):
        return _uuid_check(kind)
    return None


def _without_logical_types(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _without_logical_types(v) for k, v in schema.items()
                if not (k == "logicalType" and v in _PLAIN)}
    if isinstance(schema, list):
        return [_without_logical_types(v) for v in schema]
    return schema


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
        schema = local_schema(spec)
        self._reader = parse_schema(schema)
        self._plain_reader = parse_schema(_without_logical_types(schema))
        self._uuids = _uuid_check(schema)
        self._header = _HEADER.pack(_MAGIC, schema_id)
        # schema id -> (writer schema, the same without logical types)
        self._writers: dict[int, tuple[Any, Any]] = {
            schema_id: (self._reader, self._plain_reader)}

    def encode(self, record: dict[str, Any]) -> bytes:
        return self._encode(record, self._reader)

    def write(self, record: dict[str, Any]) -> bytes:
        """As `encode`, for a record whose uuids are strings and timestamps epoch millis (as
        `read` gives them): the same bytes, without the logical types' conversions."""
        return self._encode(record, self._plain_reader)

    def _encode(self, record: dict[str, Any], schema: Any) -> bytes:
        buf = io.BytesIO(self._header)
        buf.seek(_HEADER.size)
        schemaless_writer(buf, schema, record)
        return buf.getvalue()

    def decode(self, data: bytes | None) -> dict[str, Any]:
        return self._decode(data, plain=False)

    def read(self, data: bytes | None) -> dict[str, Any]:
        """As `decode`, with uuids as strings and timestamps as epoch millis (unless a uuid
        is not spelled canonically: then as `decode`)."""
        return self._decode(data, plain=True)

    def _decode(self, data: bytes | None, plain: bool) -> dict[str, Any]:
        if not data or len(data) < _HEADER.size:
            raise DecodeError("DECODE_ERROR", "empty or shorter than the wire-format header")
        magic, schema_id = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            raise DecodeError("DECODE_ERROR", f"magic byte {magic}, expected {_MAGIC}")
        writer = self._writer_schema(schema_id)[plain]
        reader = self._plain_reader if plain else self._reader
        body = io.BytesIO(data)
        body.seek(_HEADER.size)
        try:
            record = schemaless_reader(
                body,
                writer,
                None if writer is reader else reader,
                return_record_name=True,
                return_record_name_override=True,
            )
        except Exception as exc:  # fastavro raises many types for bad bytes
            raise DecodeError("DECODE_ERROR", f"{type(exc).__name__}: {exc}") from exc
        if body.tell() != len(data):
            raise DecodeError("DECODE_ERROR", f"{len(data) - body.tell()} trailing bytes")
        if plain and self._uuids is not None and not self._uuids(record):
            return self._decode(data, plain=False)  # it says why, or reads the spelling
        return record

    def _writer_schema(self, schema_id: int) -> tuple[Any, Any]:
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
            parsed = json.loads(schema.schema_str)
            writer = (parse_schema(parsed), parse_schema(_without_logical_types(parsed)))
        except Exception as exc:
            raise DecodeError("UNKNOWN_SCHEMA", f"schema id {schema_id} unusable: {exc}") from exc
        self._writers[schema_id] = writer
        return writer


def register_codecs(url: str, compatibility: str = "BACKWARD") -> dict[str, AvroCodec]:
    """Register every topic's schema, then a codec per topic name that writes with its id."""
    ids = register_all(url, compatibility)
    client = registry_client(url)
    return {spec.name: AvroCodec(spec, client, ids[spec.subject]) for spec in ALL_TOPICS}
