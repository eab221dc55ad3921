"""Issue 2: the first command through the real Kafka, registry, PostgreSQL and Redis."""

from __future__ import annotations

import uuid

import httpx
import psycopg
import redis

from eventpipe.settings import Settings
from streams.topics import EVENT_TOPIC, PURPOSE
from tests.kafka_helpers import end_offsets, read_avro, window_start

PURPOSE_BODY = {"objective": "신규 고객 유치", "storeName": "맛있는집", "industry": "음식점",
                "address": "서울시 강남구"}


def test_purpose_creates_a_draft_in_every_store(
    client: httpx.Client, auth: dict[str, str], user_id: str, settings: Settings,
    pg: psycopg.Connection, rds: redis.Redis,
) -> None:
    since = window_start()

    response = client.post("/api/events/purposes", json=PURPOSE_BODY, headers=auth)

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["objective"] == "신규 고객 유치"
    assert body["storeName"] == "맛있는집"
    assert body["status"] == "DRAFT"
    event_id = body["eventDraftId"]
    uuid.UUID(event_id)

    # PostgreSQL: the ERD's row.
    row = pg.execute(
        "SELECT user_id, status, objective, store_name, industry, address, version"
        " FROM events WHERE event_id = %s", (event_id,)).fetchone()
    assert row is not None
    assert (str(row[0]), row[1], row[2], row[3], row[4], row[5]) == (
        user_id, "DRAFT", "NEW_CUSTOMERS", "맛있는집", "음식점", "서울시 강남구")

    # Redis: the draft hash with its TTL, and the user's session.
    draft = rds.hgetall(f"event:draft:{event_id}")
    assert draft["status"] == "DRAFT"
    assert draft["objective"] == "NEW_CUSTOMERS"
    assert draft["userId"] == user_id
    assert 0 < rds.ttl(f"event:draft:{event_id}") <= settings.ttl_draft_seconds
    session = rds.hgetall(f"event:session:{user_id}")
    assert session["eventId"] == event_id
    assert 0 < rds.ttl(f"event:session:{user_id}") <= settings.ttl_session_seconds

    # The API reads the draft back.
    got = client.get(f"/api/events/{event_id}", headers=auth)
    assert got.status_code == 200, got.text
    view = got.json()
    assert view["eventId"] == event_id
    assert view["userId"] == user_id
    assert view["status"] == "DRAFT"
    assert view["objective"] == "신규 고객 유치"
    assert (view["storeName"], view["industry"], view["address"]) == (
        "맛있는집", "음식점", "서울시 강남구")
    assert view["recommendations"] == [] and view["images"] == []

    # event-topic carries EventDraftCreated, decoded with the registered schema.
    facts = read_avro(settings, EVENT_TOPIC.name, since,
                      lambda key, value: key == event_id.encode())
    assert len(facts) == 1
    payload = facts[0][1]["payload"]
    assert str(payload["eventDraftId"]) == event_id
    assert str(payload["userId"]) == user_id
    assert payload["objective"] == "NEW_CUSTOMERS"


def test_objective_code_is_accepted_and_answered_with_its_label(
    client: httpx.Client, auth: dict[str, str],
) -> None:
    response = client.post("/api/events/purposes",
                           json={**PURPOSE_BODY, "objective": "SALES_GROWTH"}, headers=auth)
    assert response.status_code == 201, response.text
    assert response.json()["objective"] == "매출 증대"


def test_invalid_objective_is_event_001_and_produces_nothing(
    client: httpx.Client, auth: dict[str, str], settings: Settings,
) -> None:
    before = end_offsets(settings, PURPOSE.name)
    response = client.post("/api/events/purposes",
                           json={**PURPOSE_BODY, "objective": "세계 정복"}, headers=auth)
    assert response.status_code == 400
    assert response.json()["code"] == "EVENT_001"
    assert response.json()["message"]
    assert end_offsets(settings, PURPOSE.name) == before


def test_missing_store_info_is_event_002_and_produces_nothing(
    client: httpx.Client, auth: dict[str, str], settings: Settings,
) -> None:
    before = end_offsets(settings, PURPOSE.name)
    response = client.post("/api/events/purposes",
                           json={"objective": "재방문 유도", "storeName": "  ",
                                 "address": "부산"}, headers=auth)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "EVENT_002"
    assert set(body["details"]) == {"storeName", "industry"}
    assert end_offsets(settings, PURPOSE.name) == before


def test_another_users_draft_is_not_found(
    client: httpx.Client, auth: dict[str, str], settings: Settings,
) -> None:
    from api.auth import issue_token

    created = client.post("/api/events/purposes", json=PURPOSE_BODY, headers=auth)
    assert created.status_code == 201
    event_id = created.json()["eventDraftId"]
    stranger = {"Authorization": f"Bearer {issue_token(settings, str(uuid.uuid4()))}"}
    response = client.get(f"/api/events/{event_id}", headers=stranger)
    assert response.status_code == 404
    assert response.json()["code"] == "EVENT_005"
    missing = client.get(f"/api/events/{uuid.uuid4()}", headers=auth)
    assert missing.status_code == 404
    assert missing.json() == response.json()


def test_requests_without_a_valid_token_are_auth_001(client: httpx.Client) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-jwt"}):
        response = client.post("/api/events/purposes", json=PURPOSE_BODY, headers=headers)
        assert response.status_code == 401
        assert response.json()["code"] == "AUTH_001"


def test_malformed_bodies_are_4xx_with_a_code(client: httpx.Client,
                                              auth: dict[str, str]) -> None:
    bad = [b"{", b"[]", b"\xff\xfe\x00", b'{"objective": 5}', b'{"storeName": "x"}']
    for content in bad:
        response = client.post("/api/events/purposes", content=content,
                               headers={**auth, "Content-Type": "application/json"})
        assert response.status_code == 422, (content, response.text)
        assert response.json()["code"] == "VALIDATION_ERROR"
    response = client.get("/api/events/not-a-uuid", headers=auth)
    assert response.status_code == 422
    assert response.json()["code"] == "VALIDATION_ERROR"
