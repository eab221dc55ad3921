"""Issue 16: the API's hot paths behave the same when made cheap, and under pressure.

- A GET right after a 201 sees what the 201 said (the 201 is answered from the outcome).
- GET event serves the projection's document as stored, and only to its owner.
- A slow Redis (paused, not down) is waited for: no 503, no fallback to PostgreSQL.
- Past its in-flight limit the API answers 429 with Retry-After at once; the event list
  (PostgreSQL) has a limit of its own, so a burst of lists never holds up the event reads.

Behaviour only: no test here measures time (the benchmark does).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest
import redis

from eventpipe.settings import Settings
from sinks.redis import draft_key
from tests.conftest import Process, serving_api
from tests.test_api import create, headers_for, until
from tests.test_purpose_flow import PURPOSE_BODY

PAUSE_MS = 1500  # long enough that every request below is sent while Redis is paused
HOLD_MS = 5000  # the in-flight test's pause: a read held while a second one comes


def metric(url: str, name: str, labels: str) -> float:
    """One sample of the API's /metrics (never shed, never touches Redis)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    found = re.search(rf"^{name}\{{{re.escape(labels)}\}} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_a_get_right_after_the_201_sees_what_the_201_said(
        client: httpx.Client, auth: dict[str, str], user_id: str) -> None:
    body = {**PURPOSE_BODY, "storeName": "  바로보기 카페 "}
    for _ in range(20):
        created = client.post("/api/events/purposes", json=body, headers=auth)
        assert created.status_code == 201, created.text
        draft = created.json()
        seen = client.get(f"/api/events/{draft['eventDraftId']}", headers=auth)
        assert seen.status_code == 200, seen.text
        event = seen.json()
        assert event["eventId"] == draft["eventDraftId"]
        assert (event["status"], event["storeName"], event["objective"], event["userId"]) == (
            draft["status"], draft["storeName"], draft["objective"], user_id)
        assert draft["storeName"] == "바로보기 카페"  # as the pipeline stored it


def test_get_event_is_the_stored_document_and_only_for_its_owner(
        client: httpx.Client, auth: dict[str, str], rds: redis.Redis,
        settings: Settings) -> None:
    event_id = create(client, auth)
    mine = client.get(f"/api/events/{event_id}", headers=auth)
    assert mine.status_code == 200
    assert mine.headers["content-type"] == "application/json"
    assert mine.json() == json.loads(rds.hget(draft_key(event_id), "doc"))
    other = client.get(f"/api/events/{event_id}",
                       headers=headers_for(settings, "0b6c1f53-6d1a-4d55-9b2f-3e7a0c9d2e11"))
    assert other.status_code == 404 and other.json()["code"] == "EVENT_005"
    # The OpenAPI contract still names the model.
    schema = client.get("/openapi.json").json()["paths"]["/api/events/{eventId}"]["get"]
    assert "EventView" in json.dumps(schema["responses"]["200"])


@pytest.fixture
def paused_redis(rds: redis.Redis) -> Iterator[redis.Redis]:
    """Redis, to be paused by the test. Redis 7.0 pauses CLIENT UNPAUSE too, so a pause
    runs its course; this waits for it to end (the PING is held until then)."""
    yield rds
    rds.ping()


def test_a_slow_redis_is_waited_for_never_a_503_nor_a_fallback(
        client: httpx.Client, auth: dict[str, str], api_url: str,
        paused_redis: redis.Redis) -> None:
    event_id = create(client, auth)
    job = client.post(f"/api/events/{event_id}/ai-recommendations", json={},
                      headers=auth).json()["jobId"]
    expected = client.get(f"/api/events/{event_id}", headers=auth).json()
    paths = [f"/api/events/{event_id}", f"/api/events/jobs/{job}/status"] * 8
    # As many reads at once first: a pooled connection that an earlier Redis restart broke
    # (a real outage, counted as one) is replaced now, not during the pause.
    with ThreadPoolExecutor(len(paths)) as pool:
        list(pool.map(lambda p: client.get(p, headers=auth), paths))
    fell_back = metric(api_url, "eventpipe_api_read_fallbacks_total", 'reason="redis_down"')
    # Every command of every client waits (CLIENT PAUSE ALL): Redis is slow, not down.
    paused_redis.execute_command("CLIENT", "PAUSE", PAUSE_MS, "ALL")
    with ThreadPoolExecutor(len(paths)) as pool:
        answers = list(pool.map(lambda p: client.get(p, headers=auth), paths))
    assert [a.status_code for a in answers] == [200] * len(paths), [a.text for a in answers]
    assert answers[0].json() == expected
    assert answers[1].json()["status"] == "PENDING"
    assert metric(api_url, "eventpipe_api_read_fallbacks_total",
                  'reason="redis_down"') == fell_back


@pytest.fixture(scope="module")
def tiny_api(process_env: dict[str, str], worker: Process) -> Iterator[str]:
    """An API that admits one read at a time."""
    with serving_api("test-api-tiny", {**process_env, "API_MAX_READS_IN_FLIGHT": "1"}) as url:
        yield url


def test_past_the_in_flight_limit_a_read_is_shed_with_429_and_retry_after(
        client: httpx.Client, auth: dict[str, str], tiny_api: str,
        paused_redis: redis.Redis) -> None:
    event_id = create(client, auth)
    path = f"{tiny_api}/api/events/{event_id}"
    held: list[httpx.Response] = []
    # Paused long enough that the first read is still held when the second comes: the
    # second is sent as soon as the API reports the first in flight.
    paused_redis.execute_command("CLIENT", "PAUSE", HOLD_MS, "ALL")
    first = threading.Thread(target=lambda: held.append(httpx.get(path, headers=auth,
                                                                  timeout=60)))
    first.start()
    try:
        assert until(lambda: metric(tiny_api, "eventpipe_api_in_flight", 'kind="read"') == 1)
        shed = httpx.get(path, headers=auth, timeout=10)
        live = httpx.get(f"{tiny_api}/health/live", timeout=10)  # never shed
    finally:
        first.join(60)
    assert shed.status_code == 429, shed.text
    assert shed.headers["retry-after"] == "1"
    assert shed.json()["code"] == "TOO_MANY_REQUESTS"
    assert live.status_code == 200
    assert held[0].status_code == 200 and held[0].json()["eventId"] == event_id
    assert metric(tiny_api, "eventpipe_api_shed_total", 'kind="read"') >= 1
    # Once the held read is done, reads are admitted again.
    assert httpx.get(path, headers=auth, timeout=10).status_code == 200


def test_past_its_own_limit_a_list_is_shed_and_the_event_reads_go_on(
        client: httpx.Client, auth: dict[str, str], process_env: dict[str, str],
        worker: Process, settings: Settings) -> None:
    event_id = create(client, auth)
    with serving_api("test-api-one-list", {**process_env, "API_MAX_LISTS_IN_FLIGHT": "1"}) as url, \
            psycopg.connect(settings.database_url) as lock:
        # The events table locked, the first list waits for PostgreSQL, in flight.
        lock.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        held: list[httpx.Response] = []
        first = threading.Thread(target=lambda: held.append(
            httpx.get(f"{url}/api/events", headers=auth, timeout=60)))
        first.start()
        try:
            assert until(lambda: metric(url, "eventpipe_api_in_flight", 'kind="list"') == 1)
            shed = httpx.get(f"{url}/api/events?page=1", headers=auth, timeout=10)
            event = httpx.get(f"{url}/api/events/{event_id}", headers=auth, timeout=10)
        finally:
            lock.rollback()  # the lock goes, the held list is answered
            first.join(60)
        assert shed.status_code == 429, shed.text
        assert (shed.headers["retry-after"], shed.json()["code"]) == ("1", "TOO_MANY_REQUESTS")
        assert event.status_code == 200 and event.json()["eventId"] == event_id
        assert held[0].status_code == 200, held[0].text
        assert event_id in [e["eventId"] for e in held[0].json()["items"]]
        assert metric(url, "eventpipe_api_shed_total", 'kind="list"') >= 1
