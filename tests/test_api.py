"""Issue 5: every endpoint through the real stack, success and error paths.

The collaborators' side (progress, results) is written to the topics here, as the AI and
content workers will write it.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from api.auth import issue_token
from eventpipe.settings import Settings
from streams.topics import IMAGE, PURPOSE, RECOMMENDATION
from tests.pipeline import Topics
from tests.test_lifecycle_topics import TRENDS, recommendations
from tests.test_purpose_flow import PURPOSE_BODY


def headers_for(settings: Settings, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(settings, user)}"}


def create(client: httpx.Client, auth: dict[str, str]) -> str:
    response = client.post("/api/events/purposes", json=PURPOSE_BODY, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()["eventDraftId"]


def until(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def job_status(client: httpx.Client, auth: dict[str, str], job_id: str) -> dict[str, Any]:
    response = client.get(f"/api/events/jobs/{job_id}/status", headers=auth)
    assert response.status_code == 200, response.text
    return response.json()


def completed(client: httpx.Client, auth: dict[str, str], job_id: str) -> dict[str, Any]:
    body = until(lambda: (b := job_status(client, auth, job_id))["status"] == "COMPLETED" and b)
    assert body, job_status(client, auth, job_id)
    return body


def test_from_purpose_to_ended_through_the_api(client: httpx.Client, auth: dict[str, str],
                                               user_id: str, topics: Topics) -> None:
    event_id = create(client, auth)

    # AI recommendations (polled as the app does).
    started = client.post(f"/api/events/{event_id}/ai-recommendations", json={}, headers=auth)
    assert started.status_code == 202, started.text
    job = started.json()["jobId"]
    assert started.json()["status"] == "PENDING"
    assert job_status(client, auth, job) == {"jobId": job, "jobType": "AI_RECOMMENDATION",
                                             "status": "PENDING", "progress": 0,
                                             "message": "AI가 분석 중입니다"}
    topics.apply(RECOMMENDATION, event_id, user_id, "RecommendationJobProgress",
                 {"jobId": job, "progress": 30})
    assert job_status(client, auth, job)["status"] == "PROCESSING"
    recs = recommendations()
    topics.send(RECOMMENDATION, event_id, user_id, "RecommendationsGenerated",
                {"jobId": job, "trendAnalysis": TRENDS, "recommendations": recs})
    done = completed(client, auth, job)
    assert done["progress"] == 100
    assert [r["title"] for r in done["recommendations"]] == [r["title"] for r in recs]
    assert set(done["recommendations"][0]) == {
        "recommendationId", "title", "prize", "method", "cost", "roi", "promotionType",
        "targetAudience", "description", "isSelected"}
    assert done["trendAnalysis"] == TRENDS

    chosen = client.put(f"/api/events/{event_id}/recommendations", headers=auth, json={
        "recommendationId": recs[2]["recommendationId"], "eventName": "연말 경품 대잔치"})
    assert chosen.status_code == 200, chosen.text
    assert chosen.json()["selectedRecommendationId"] == recs[2]["recommendationId"]
    assert chosen.json()["eventName"] == "연말 경품 대잔치"

    # Images.
    started = client.post(f"/api/events/{event_id}/content-generation", headers=auth,
                          json={"styles": ["FANCY"], "platforms": ["INSTAGRAM", "GENIE_TV"]})
    assert started.status_code == 202, started.text
    image_job = started.json()["jobId"]
    assert job_status(client, auth, image_job)["message"] == "이미지를 생성 중입니다"
    images = [{"imageId": str(uuid.uuid4()), "imageUrl": f"http://img/{p}.png",
               "style": "FANCY", "platform": p} for p in ("INSTAGRAM", "GENIE_TV")]
    topics.send(IMAGE, event_id, user_id, "ImagesGenerated", {"jobId": image_job,
                                                              "images": images})
    assert {i["imageId"] for i in completed(client, auth, image_job)["images"]} == {
        i["imageId"] for i in images}
    selected = client.put(f"/api/events/{event_id}/images/{images[0]['imageId']}/select",
                          headers=auth)
    assert selected.status_code == 200, selected.text
    assert selected.json()["selectedImageUrl"] == "http://img/INSTAGRAM.png"

    # Dates and channels, then publish and end.
    edited = client.patch(f"/api/events/{event_id}", headers=auth, json={
        "startDate": "2026-12-20", "endDate": "2026-12-31", "channels": ["INSTAGRAM"]})
    assert edited.status_code == 200, edited.text
    assert (edited.json()["startDate"], edited.json()["channels"]) == ("2026-12-20",
                                                                       ["INSTAGRAM"])
    published = client.post(f"/api/events/{event_id}/publish", headers=auth,
                            json={"channels": ["INSTAGRAM", "URIDONGNE_TV"]})
    assert published.status_code == 200, published.text
    assert published.json() == {"eventId": event_id, "status": "PUBLISHED",
                                "distributionResults": [
                                    {"channel": "INSTAGRAM", "status": "PENDING",
                                     "message": None},
                                    {"channel": "URIDONGNE_TV", "status": "PENDING",
                                     "message": None}]}
    again = client.patch(f"/api/events/{event_id}", headers=auth, json={"eventName": "x"})
    assert (again.status_code, again.json()["code"]) == (409, "EVENT_003")
    ended = client.post(f"/api/events/{event_id}/end", headers=auth)
    assert ended.status_code == 200, ended.text
    assert ended.json()["status"] == "ENDED"
    assert client.get(f"/api/events/{event_id}", headers=auth).json()["status"] == "ENDED"


def test_a_failed_job_answers_with_the_seeds_body(client: httpx.Client, auth: dict[str, str],
                                                  user_id: str, topics: Topics) -> None:
    event_id = create(client, auth)
    job = client.post(f"/api/events/{event_id}/ai-recommendations", json={},
                      headers=auth).json()["jobId"]
    topics.send(RECOMMENDATION, event_id, user_id, "RecommendationJobFailed",
                {"jobId": job, "error": "AI 분석 실패"})
    body = until(lambda: (b := job_status(client, auth, job))["status"] == "FAILED" and b)
    assert body == {"jobId": job, "jobType": "AI_RECOMMENDATION", "status": "FAILED",
                    "progress": 0, "error": "AI 분석 실패", "message": "다시 시도해주세요"}


def test_unknown_and_foreign_jobs_are_job_001(client: httpx.Client, auth: dict[str, str],
                                              settings: Settings) -> None:
    event_id = create(client, auth)
    job = client.post(f"/api/events/{event_id}/ai-recommendations", json={},
                      headers=auth).json()["jobId"]
    stranger = headers_for(settings, str(uuid.uuid4()))
    for response in (client.get(f"/api/events/jobs/{uuid.uuid4()}/status", headers=auth),
                     client.get(f"/api/events/jobs/{job}/status", headers=stranger)):
        assert response.status_code == 404
        assert response.json() == {"code": "JOB_001", "message": "Job을 찾을 수 없습니다"}


def test_publish_not_ready_lists_what_is_missing(client: httpx.Client,
                                                 auth: dict[str, str]) -> None:
    event_id = create(client, auth)
    response = client.post(f"/api/events/{event_id}/publish", headers=auth)
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "EVENT_004"
    assert body["details"] == ["selectedRecommendation", "selectedImage", "channels",
                               "startDate", "endDate"]


def test_edit_rules(client: httpx.Client, auth: dict[str, str]) -> None:
    event_id = create(client, auth)
    backwards = client.patch(f"/api/events/{event_id}", headers=auth,
                             json={"startDate": "2026-12-31", "endDate": "2026-12-01"})
    assert (backwards.status_code, backwards.json()["code"]) == (400, "EVENT_006")
    client.patch(f"/api/events/{event_id}", headers=auth, json={"endDate": "2026-12-01"})
    late_start = client.patch(f"/api/events/{event_id}", headers=auth,
                              json={"startDate": "2026-12-31"})
    assert (late_start.status_code, late_start.json()["code"]) == (400, "EVENT_006")
    for bad in ({}, {"channels": ["MYSPACE"]}, {"startDate": "31-12-2026"},
                {"eventName": "x" * 201}, {"unknown": 1}):
        response = client.patch(f"/api/events/{event_id}", headers=auth, json=bad)
        assert (response.status_code, response.json()["code"]) == (422, "VALIDATION_ERROR"), bad
    assert client.get(f"/api/events/{event_id}", headers=auth).json()["endDate"] == "2026-12-01"


def test_discard_then_gone(client: httpx.Client, auth: dict[str, str]) -> None:
    event_id = create(client, auth)
    response = client.delete(f"/api/events/{event_id}", headers=auth)
    assert response.status_code == 204, response.text
    assert client.get(f"/api/events/{event_id}", headers=auth).status_code == 404
    again = client.delete(f"/api/events/{event_id}", headers=auth)
    assert (again.status_code, again.json()["code"]) == (404, "EVENT_005")


def test_list_is_the_callers_own_by_status_and_paged(client: httpx.Client,
                                                     settings: Settings) -> None:
    me = headers_for(settings, str(uuid.uuid4()))
    ids = [create(client, me) for _ in range(3)]
    client.delete(f"/api/events/{ids[0]}", headers=me)
    create(client, headers_for(settings, str(uuid.uuid4())))  # someone else's
    listed = client.get("/api/events", headers=me, params={"status": "DRAFT", "size": 1})
    assert listed.status_code == 200
    body = listed.json()
    assert (body["total"], body["size"], body["page"]) == (2, 1, 0)
    assert [e["eventId"] for e in body["items"]] == [ids[2]]  # newest first
    second = client.get("/api/events", headers=me, params={"size": 1, "page": 1}).json()
    assert [e["eventId"] for e in second["items"]] == [ids[1]]
    assert client.get("/api/events", headers=me, params={"status": "ENDED"}).json()["total"] == 0
    bad = client.get("/api/events", headers=me, params={"status": "LOST", "size": 1000})
    assert (bad.status_code, bad.json()["code"]) == (422, "VALIDATION_ERROR")


def test_user_b_can_neither_read_list_change_nor_publish_user_as_event(
        client: httpx.Client, auth: dict[str, str], settings: Settings) -> None:
    event_id = create(client, auth)
    b = headers_for(settings, str(uuid.uuid4()))
    missing = client.get(f"/api/events/{uuid.uuid4()}", headers=b).json()
    attempts = [
        client.get(f"/api/events/{event_id}", headers=b),
        client.patch(f"/api/events/{event_id}", headers=b, json={"eventName": "탈취"}),
        client.delete(f"/api/events/{event_id}", headers=b),
        client.post(f"/api/events/{event_id}/ai-recommendations", headers=b, json={}),
        client.post(f"/api/events/{event_id}/publish", headers=b),
        client.post(f"/api/events/{event_id}/end", headers=b),
    ]
    for response in attempts:
        assert response.status_code == 404, response.text
        assert response.json() == missing  # exactly like an event that does not exist
    assert client.get("/api/events", headers=b).json()["total"] == 0
    mine = client.get(f"/api/events/{event_id}", headers=auth).json()
    assert (mine["status"], mine["eventName"]) == ("DRAFT", None)


def test_command_outcome_by_id(client: httpx.Client, auth: dict[str, str], user_id: str,
                               settings: Settings, topics: Topics) -> None:
    event_id = create(client, auth)
    command_id = topics.send(PURPOSE, event_id, user_id, "DraftDiscarded", {"reason": None})
    topics.outcome(command_id)
    response = client.get(f"/api/events/commands/{command_id}", headers=auth)
    assert response.status_code == 200
    assert response.json()["status"] == "ACCEPTED"
    assert response.json()["commandType"] == "DraftDiscarded"
    stranger = headers_for(settings, str(uuid.uuid4()))
    hidden = client.get(f"/api/events/commands/{command_id}", headers=stranger)
    assert hidden.status_code == 404


def test_expired_wrongly_signed_and_none_tokens_are_refused(client: httpx.Client,
                                                            settings: Settings) -> None:
    import jwt

    user = str(uuid.uuid4())
    now = int(time.time())
    tokens = [
        issue_token(settings, user, ttl_seconds=-10),  # expired
        jwt.encode({"sub": user, "exp": now + 60}, "another-secret-of-enough-length-xx",
                   algorithm="HS256"),
        jwt.encode({"sub": user, "exp": now + 60}, None, algorithm="none"),
        jwt.encode({"sub": user}, settings.jwt_secret, algorithm="HS256"),  # no exp
        jwt.encode({"sub": "not-a-uuid", "exp": now + 60}, settings.jwt_secret,
                   algorithm="HS256"),
    ]
    for token in tokens:
        response = client.get("/api/events", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, token
        assert response.json()["code"] == "AUTH_001"


def test_health_and_docs(client: httpx.Client) -> None:
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert {name: c["status"] for name, c in ready.json()["checks"].items()} == {
        "kafka": "UP", "schemaRegistry": "UP", "postgres": "UP", "redis": "UP",
        "streamWorker": "UP", "projector": "UP"}
    assert client.get("/health/live").json() == {"status": "UP"}
    spec = client.get("/openapi.json").json()
    assert "/api/events/{eventId}/publish" in spec["paths"]
    assert client.get("/docs").status_code == 200
    metrics = client.get("/metrics").text
    assert ('eventpipe_api_requests_total{method="GET",route="/health/ready",status="200"}'
            in metrics)
    assert 'route="/api/events/{eventId}"' in metrics  # templates, not raw ids
    assert "eventpipe_api_request_seconds_bucket" in metrics


@pytest.mark.chaos
def test_reads_are_served_from_postgresql_while_redis_is_down(
        client: httpx.Client, auth: dict[str, str]) -> None:
    import subprocess

    from tests.conftest import ROOT

    event_id = create(client, auth)
    job = client.post(f"/api/events/{event_id}/ai-recommendations", json={},
                      headers=auth).json()["jobId"]
    expected = client.get(f"/api/events/{event_id}", headers=auth).json()
    redis_url = httpx.URL(Settings().redis_url)
    subprocess.run(["redis-cli", "-h", redis_url.host, "-p", str(redis_url.port), "shutdown"],
                   check=False, capture_output=True)
    try:
        assert client.get("/health/ready").json()["checks"]["redis"]["status"] == "DOWN"
        while_down = client.get(f"/api/events/{event_id}", headers=auth)
        assert while_down.status_code == 200
        assert while_down.json() == expected
        assert job_status(client, auth, job)["status"] == "PENDING"
        assert client.get("/api/events", headers=auth).status_code == 200
    finally:
        subprocess.run(["bash", "stack/stack.sh", "up"], cwd=ROOT, check=True,
                       capture_output=True)
    assert until(lambda: client.get("/health/ready").status_code == 200)
