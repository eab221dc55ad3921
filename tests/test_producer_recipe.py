"""The README's recipe for teams with their own client, run exactly as written there: the code
block between its `producer-recipe` markers is executed, not copied. A PurposeSelected
produced with it is accepted, its outcome read both from event.outcome.v1 and from the API,
and its draft served by the API."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

import httpx
import pytest

from eventpipe.settings import Settings
from streams.partitioner import partition_for
from streams.topics import PURPOSE
from tests.conftest import ROOT

RECIPE = re.compile(r"<!-- producer-recipe:start -->\n```python\n(.*?)```\n"
                    r"<!-- producer-recipe:end -->", re.S)


@pytest.fixture(scope="module")
def recipe() -> dict[str, Any]:
    found = RECIPE.search((ROOT / "README.md").read_text())
    assert found, "README.md has no producer-recipe block"
    namespace: dict[str, Any] = {"__name__": "readme_recipe"}
    exec(compile(found.group(1), "README.md:producer-recipe", "exec"), namespace)
    return namespace


def _poll(client: httpx.Client, path: str, headers: dict[str, str],
          timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout  # a bound on waiting, not a speed test
    while True:
        answer = client.get(path, headers=headers)
        if answer.status_code == 200 or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def test_the_readme_recipe_produces_a_command_the_pipeline_accepts(
        recipe: dict[str, Any], settings: Settings, client: httpx.Client,
        auth: dict[str, str], user_id: str, caplog: pytest.LogCaptureFixture) -> None:
    bootstrap, registry = settings.kafka_bootstrap_servers, settings.schema_registry_url
    event_id, command_id = str(uuid.uuid4()), str(uuid.uuid4())
    outcomes = recipe["outcome_reader"](bootstrap, registry)
    producer = recipe["command_producer"](bootstrap, registry)
    delivered: list[Any] = []
    try:
        with caplog.at_level(logging.INFO):  # httpx logs every request it sends
            producer.produce(PURPOSE.name, key=event_id, value=recipe["command"](
                command_id, event_id, user_id, "eventpipe.purpose.PurposeSelected",
                {"objective": "NEW_CUSTOMERS", "storeName": "레시피식당", "industry": "음식점",
                 "address": "서울시 종로구", "storeId": None}),
                on_delivery=lambda err, msg: delivered.append((err, msg)))
            assert producer.flush(30) == 0
        outcome = recipe["wait_for_outcome"](outcomes, command_id)
    finally:
        outcomes.close()

    requests = [r.getMessage() for r in caplog.records if r.name.startswith("httpx")]
    assert requests and not [r for r in requests if "/associations/" in r], requests
    [(error, message)] = delivered
    assert error is None
    partitions = list(range(settings.topic_partitions))
    assert message.partition() == partition_for(event_id.encode(), partitions, partitions)

    assert outcome["status"] == "ACCEPTED", outcome
    assert str(outcome["eventId"]) == event_id
    by_api = _poll(client, f"/api/events/commands/{command_id}", auth)
    assert by_api.status_code == 200, by_api.text
    assert by_api.json()["status"] == "ACCEPTED"
    draft = _poll(client, f"/api/events/{event_id}", auth)
    assert draft.status_code == 200, draft.text
    assert draft.json()["status"] == "DRAFT"
    assert draft.json()["storeName"] == "레시피식당"
