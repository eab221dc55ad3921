"""Issue 8.6: hostile API input answers 4xx with a code, never 5xx, and stores nothing;
strings that look like SQL or unusual unicode are stored verbatim."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from eventpipe.settings import Settings

PURPOSE = {"objective": "신규 고객 유치", "storeName": "맛있는집", "industry": "음식점",
           "address": "서울시 강남구"}
JSON = {"Content-Type": "application/json"}


def _stored(pg: psycopg.Connection, user: str) -> tuple[int, int]:
    """Rows of the user's events and command outcomes: after a refused request, none."""
    time.sleep(1.0)  # an accepted command is projected well within this
    events = pg.execute("SELECT count(*) FROM events WHERE user_id = %s", (user,)).fetchone()
    outcomes = pg.execute("SELECT count(*) FROM command_outcomes WHERE user_id = %s",
                          (user,)).fetchone()
    return events[0], outcomes[0]


def _create(client: httpx.Client, auth: dict[str, str], **fields: str) -> dict[str, str]:
    r = client.post("/api/events/purposes", json={**PURPOSE, **fields}, headers=auth)
    assert r.status_code == 201, r.text
    return r.json()


def test_an_oversized_body_is_413_whether_declared_or_chunked(
        client: httpx.Client, auth: dict[str, str], user_id: str, settings: Settings,
        pg: psycopg.Connection) -> None:
    body = json.dumps({**PURPOSE, "storeName": "x" * 5_000_000}).encode()
    declared = client.post("/api/events/purposes", content=body, headers={**auth, **JSON})

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for i in range(0, len(body), 64 * 1024):
            yield body[i:i + 64 * 1024]

    chunked = client.post("/api/events/purposes", content=chunks(), headers={**auth, **JSON})
    for r in (declared, chunked):
        assert r.status_code == 413, r.text[:300]
        assert r.json()["code"] == "PAYLOAD_TOO_LARGE"
        assert str(settings.api_max_body_bytes) in r.json()["message"]
    assert "transfer-encoding" not in declared.request.headers
    assert chunked.request.headers["transfer-encoding"] == "chunked"
    assert _stored(pg, user_id) == (0, 0)


@pytest.mark.parametrize("body", [
    "[" * 10_000 + "]" * 10_000,
    '{"a":' * 10_000 + "1" + "}" * 10_000,
    '{"objective": ' + "[" * 10_000 + "]" * 10_000 + "}",
], ids=["arrays", "objects", "inside-a-field"])
def test_json_nested_10000_levels_deep_is_a_validation_error(
        client: httpx.Client, auth: dict[str, str], user_id: str, pg: psycopg.Connection,
        body: str) -> None:
    r = client.post("/api/events/purposes", content=body, headers={**auth, **JSON})
    assert r.status_code == 422, r.text[:300]
    assert r.json()["code"] == "VALIDATION_ERROR"
    assert _stored(pg, user_id) == (0, 0)


@pytest.mark.parametrize("body", [
    json.dumps({**PURPOSE, "storeName": "맛\u0000집"}),  # NUL: PostgreSQL text cannot hold it
    json.dumps({**PURPOSE, "address": "서울\u0000"}),
    '{"objective": "신규 고객 유치", "storeName": "\\ud800", "industry": "i", "address": "a"}',
    '{"objective": "신규 고객 유치", "storeName": "\\udfff\\ud800", "industry": "i",'
    ' "address": "a"}',
    json.dumps({**PURPOSE, "storeName": "가" * 10_000}),  # ERD: VARCHAR(200)
    json.dumps({**PURPOSE, "storeName": "😀" * 201}),
    json.dumps({**PURPOSE, "industry": "x" * 101}),  # VARCHAR(100)
    b'{"objective": "\xff\xfe"}',  # not UTF-8
], ids=["nul-name", "nul-address", "lone-surrogate", "reversed-surrogates", "10k-name",
        "201-emoji", "long-industry", "not-utf8"])
def test_text_the_projections_cannot_hold_is_refused_with_a_code(
        client: httpx.Client, auth: dict[str, str], user_id: str, pg: psycopg.Connection,
        body: str | bytes) -> None:
    r = client.post("/api/events/purposes", content=body, headers={**auth, **JSON})
    assert r.status_code == 422, r.text[:300]
    assert r.json()["code"] == "VALIDATION_ERROR"
    assert _stored(pg, user_id) == (0, 0)


def test_a_patch_with_nul_is_refused_and_the_event_unchanged(
        client: httpx.Client, auth: dict[str, str], user_id: str,
        pg: psycopg.Connection) -> None:
    event_id = _create(client, auth)["eventDraftId"]
    r = client.patch(f"/api/events/{event_id}", json={"eventName": "a\u0000b"}, headers=auth)
    assert r.status_code == 422, r.text[:300]
    assert r.json()["code"] == "VALIDATION_ERROR"
    assert _stored(pg, user_id) == (1, 1)  # the create only
    assert client.get(f"/api/events/{event_id}", headers=auth).json()["eventName"] is None


@pytest.mark.parametrize("name", [
    "x'); DROP TABLE events; --",
    "' OR '1'='1",
    "%s %(user_id)s $1 {0} \\' \\\\",
    "Robert\"); DELETE FROM command_outcomes WHERE (\"1\"=\"1",
    "متجر القهوة \u202eRTL\u202c",  # Arabic with a right-to-left override
    "🧁☕️👩🏽‍🍳 e\u0301 \u200b\ufeff",  # emoji with ZWJ and skin tone, combining, zero-width
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢" * 28,  # 196 astral characters: within VARCHAR(200)
], ids=["drop-table", "or-1-1", "placeholders", "delete", "rtl", "emoji", "astral-196"])
def test_sql_looking_and_unusual_unicode_strings_are_stored_verbatim(
        client: httpx.Client, auth: dict[str, str], user_id: str, pg: psycopg.Connection,
        name: str) -> None:
    event_id = _create(client, auth, storeName=name, address=name)["eventDraftId"]
    r = client.patch(f"/api/events/{event_id}", json={"eventName": name}, headers=auth)
    assert r.status_code == 200, r.text
    view = client.get(f"/api/events/{event_id}", headers=auth).json()
    assert (view["storeName"], view["eventName"]) == (name, name)
    row = pg.execute("SELECT store_name, address, event_name FROM events WHERE event_id = %s",
                     (event_id,)).fetchone()
    assert row == (name, name, name)
    # The tables are all still there, with the caller's rows only.
    assert _stored(pg, user_id) == (1, 2)
    listed = client.get("/api/events", headers=auth).json()
    assert [i["storeName"] for i in listed["items"]] == [name]
