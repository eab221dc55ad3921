"""Schemas in the registry: register, check, and look up by id (cached).

Talks to any Confluent-compatible registry (Apicurio's `/apis/ccompat/v7` here) through
confluent-kafka's client, so we hand-write no HTTP.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastavro.schema import load_schema
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_random

from streams.topics import ALL_TOPICS, TopicSpec

__all__ = [
    "CompatibilityReport",
    "check_all",
    "local_schema",
    "local_schema_str",
    "record_namespace",
    "register_all",
    "registry_client",
]


REGISTRY_TIMEOUT_SECONDS = 10


@cache
def local_schema(spec: TopicSpec) -> dict[str, Any]:
    """The topic's schema from `schemas/`, with its shared named types inlined."""
    return load_schema(str(spec.schema_path), _write_hint=False)


@cache
def record_namespace(spec: TopicSpec) -> str:
    """The namespace of the topic's records: union branches are named `<namespace>.<Record>`."""
    return local_schema(spec)["name"].rsplit(".", 1)[0]


def local_schema_str(spec: TopicSpec) -> str:
    return json.dumps(local_schema(spec), ensure_ascii=False, separators=(",", ":"))


@lru_cache(maxsize=8)
def registry_client(url: str) -> SchemaRegistryClient:
    # The client's default is no timeout at all: a registry that stops answering mid-request
    # would hang its caller for good; a timeout is retried by the client, then by our callers.
    return SchemaRegistryClient({"url": url, "timeout": REGISTRY_TIMEOUT_SECONDS})


def _conflict(exc: BaseException) -> bool:
    return isinstance(exc, SchemaRegistryError) and exc.http_status_code == 409


# Two processes starting at once (a worker and an API) both set a subject's rule; Apicurio
# answers the slower one 409 ("a rule named 'COMPATIBILITY' already exists") as it creates
# the rule. Asked again, it updates the rule that now exists.
@retry(retry=retry_if_exception(_conflict), stop=stop_after_attempt(5),
       wait=wait_random(0.05, 0.3), reraise=True)
def _set_compatibility(client: SchemaRegistryClient, subject: str, level: str) -> None:
    client.set_compatibility(subject_name=subject, level=level)


def register_all(url: str, compatibility: str = "BACKWARD") -> dict[str, int]:
    """Set each subject's compatibility, then register the local schema; returns ids."""
    client = registry_client(url)
    ids: dict[str, int] = {}
    for spec in ALL_TOPICS:
        _set_compatibility(client, spec.subject, compatibility)
        ids[spec.subject] = client.register_schema(
            spec.subject, Schema(local_schema_str(spec), "AVRO")
        )
    return ids


@dataclass(frozen=True)
class CompatibilityReport:
    subject: str
    registered: bool  # is there a version already?
    compatible: bool
    messages: tuple[str, ...] = ()


def check_all(url: str) -> list[CompatibilityReport]:
    """Would registering the local files succeed? Registers nothing."""
    client = registry_client(url)
    reports: list[CompatibilityReport] = []
    for spec in ALL_TOPICS:
        schema = Schema(local_schema_str(spec), "AVRO")
        try:
            client.get_latest_version(spec.subject)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                reports.append(CompatibilityReport(spec.subject, False, True))
                continue
            raise
        ok = client.test_compatibility(spec.subject, schema)
        reports.append(CompatibilityReport(spec.subject, True, bool(ok)))
    return reports
