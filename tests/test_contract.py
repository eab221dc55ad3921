"""The contract written once: the enums and text limits of `streams/vocabulary.py` against the
Avro schemas, the migrations, the API's OpenAPI document, the AI answer's check and the rules.
Each test names what drifted, so a change in one place that is not made in the others fails."""

from __future__ import annotations

import json
import re
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest

from api.main import create_app
from eventpipe.settings import Settings
from streams import lifecycle, vocabulary
from streams.lifecycle import Command, Inapplicable
from workers.ai_provider import _Recommendation

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = "\n".join(p.read_text() for p in sorted((ROOT / "sinks/migrations").glob("*.sql")))


def _avro_enums() -> dict[str, list[str]]:
    """Every enum declared in schemas/ (top level or nested), by name."""
    found: dict[str, list[str]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "enum":
                found[node["name"]] = node["symbols"]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in sorted((ROOT / "schemas").glob("*.avsc")):
        walk(json.loads(path.read_text()))
    return found


def _checks() -> dict[str, list[str]]:
    """Each `CHECK (column IN (...))` constraint of the migrations: its allowed values."""
    pattern = re.compile(r"CONSTRAINT (\w+) CHECK \(\w+ IN \(([^)]*)\)\)", re.S)
    return {name: re.findall(r"'([^']*)'", values) for name, values in pattern.findall(MIGRATIONS)}


def _varchar(table: str, column: str) -> int:
    """The size of `table.column` as the migrations declare it (CREATE TABLE or ADD COLUMN)."""
    block = re.search(rf"CREATE TABLE {table} \((.*?)\n\);", MIGRATIONS, re.S)
    assert block, f"no CREATE TABLE {table} in the migrations"
    sizes = re.findall(rf"^\s*{column}\s+VARCHAR\((\d+)\)", block.group(1), re.M)
    sizes += re.findall(rf"ALTER TABLE {table} ADD COLUMN {column} VARCHAR\((\d+)\)", MIGRATIONS)
    assert len(sizes) == 1, f"{table}.{column}: VARCHAR sizes found {sizes}"
    return int(sizes[0])


def _values(enum: type[StrEnum]) -> list[str]:
    return [member.value for member in enum]


def test_every_avro_enum_is_the_vocabularys_enum_of_the_same_name() -> None:
    avro = _avro_enums()
    assert set(avro) == {"Channel", "ImageStyle", "Objective", "OutcomeStatus", "DeliveryStatus"}
    for name, symbols in avro.items():
        assert _values(getattr(vocabulary, name)) == symbols, name


@pytest.mark.parametrize(("constraint", "enum", "except_"), [
    ("ck_events_status", vocabulary.EventStatus, {"DISCARDED"}),  # only the changelog keeps it
    ("ck_jobs_status", vocabulary.JobStatus, set()),
    ("ck_jobs_type", vocabulary.JobType, set()),
    ("ck_outcomes_status", vocabulary.OutcomeStatus, set()),
    ("ck_distribution_log_channel", vocabulary.Channel, set()),
    ("ck_distribution_log_status", vocabulary.DeliveryStatus, set()),
])
def test_the_migrations_checks_allow_exactly_the_enums_values(
        constraint: str, enum: type[StrEnum], except_: set[str]) -> None:
    assert _checks()[constraint] == [v for v in _values(enum) if v not in except_]


@pytest.mark.parametrize("field", sorted(vocabulary.TEXT_COLUMNS))
def test_each_text_limit_is_its_columns_size(field: str) -> None:
    table, column, size = vocabulary.TEXT_COLUMNS[field]
    assert _varchar(table, column) == size


def test_the_selected_image_url_column_holds_any_image_url() -> None:
    assert _varchar("events", "selected_image_url") == vocabulary.TEXT_LIMITS["imageUrl"]


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return create_app(Settings()).openapi()


def _schema(openapi: dict[str, Any], model: str) -> dict[str, Any]:
    return openapi["components"]["schemas"][model]["properties"]


def _max_length(prop: dict[str, Any]) -> int | None:
    """maxLength of a property, also when it is optional (anyOf with null)."""
    for option in [prop, *prop.get("anyOf", [])]:
        if "maxLength" in option:
            return int(option["maxLength"])
    return None


@pytest.mark.parametrize(("model", "field"), [
    ("PurposeRequest", "storeName"), ("PurposeRequest", "industry"),
    ("PurposeRequest", "address"), ("PatchEventRequest", "eventName"),
    ("SelectRecommendationRequest", "eventName"),
])
def test_the_apis_text_limits_are_the_columns(openapi: dict[str, Any], model: str,
                                              field: str) -> None:
    assert _max_length(_schema(openapi, model)[field]) == vocabulary.TEXT_LIMITS[field]


@pytest.mark.parametrize("model", ["PatchEventRequest", "SelectRecommendationRequest"])
def test_the_apis_description_limit_is_the_shared_one(openapi: dict[str, Any],
                                                      model: str) -> None:
    description = _schema(openapi, model)["description"]
    assert _max_length(description) == vocabulary.DESCRIPTION_CHARS


@pytest.mark.parametrize(("component", "enum"), [
    ("Channel", vocabulary.Channel), ("ImageStyle", vocabulary.ImageStyle),
    ("JobType", vocabulary.JobType), ("JobStatus", vocabulary.JobStatus),
])
def test_the_apis_enums_are_the_vocabularys(openapi: dict[str, Any], component: str,
                                            enum: type[StrEnum]) -> None:
    assert openapi["components"]["schemas"][component]["enum"] == _values(enum)


def test_the_listable_statuses_are_every_projected_status(openapi: dict[str, Any]) -> None:
    (listing,) = [op["get"] for path, op in openapi["paths"].items()
                  if path == "/api/events" and "get" in op]
    (status,) = [p for p in listing["parameters"] if p["name"] == "status"]
    allowed = next(o["enum"] for o in status["schema"]["anyOf"] if "enum" in o)
    assert allowed == _checks()["ck_events_status"]


@pytest.mark.parametrize("field", ["title", "prize", "method", "cost", "roi", "promotionType",
                                   "targetAudience"])
def test_the_ai_answers_check_holds_the_columns_sizes(field: str) -> None:
    prop = _Recommendation.model_json_schema()["properties"][field]
    assert prop["maxLength"] == vocabulary.TEXT_LIMITS[field]


@pytest.mark.parametrize("field", sorted(vocabulary.TEXT_LIMITS))
def test_the_rules_refuse_a_text_one_over_its_column_and_take_one_at_it(field: str) -> None:
    limit = vocabulary.TEXT_LIMITS[field]

    def command(text: str) -> Command:
        return Command(type="PurposeSelected", command_id="c", event_id="e", user_id="u",
                       occurred_at=0, payload={"nested": [{field: text}]})

    with pytest.raises(Inapplicable) as refused:
        lifecycle.apply(None, command("x" * (limit + 1)))
    assert refused.value.code == "INVALID_TEXT"
    try:
        lifecycle.apply(None, command("x" * limit))
    except Inapplicable as exc:  # another rule may refuse the odd payload, never this one
        assert exc.code != "INVALID_TEXT"
    except (KeyError, TypeError):
        pass  # the rest of the rules met a payload that is only for this test
