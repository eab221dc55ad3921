"""Issue 16: the hot GETs' fast path (api/fast_reads.py) answers what the FastAPI routes do.

An id spelled in capitals is the same id to FastAPI (a UUID), but never matches the fast
path's pattern: the same request can be asked of both paths, and the route's answer is
the reference. Behaviour only; the benchmark measures the speed.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import jwt
import redis

from api.auth import issue_token
from eventpipe.settings import Settings
from sinks.redis import draft_key, job_key
from streams.topics import IMAGE, RECOMMENDATION
from tests.conftest import LOGS
from tests.pipeline import Topics
from tests.test_api import completed, create, headers_for, job_status, until
from tests.test_api_hot_paths import metric
from tests.test_lifecycle_topics import TRENDS, recommendations


def both_paths(client: httpx.Client, auth: dict[str, str], path: str,
               the_id: str) -> httpx.Response:
    """GET `path` on the fast path and on the FastAPI route; asserts the two answers are
    the same (status, content type and length, body) and returns the fast one."""
    fast = client.get(path, headers=auth)
    routed = client.get(path.replace(the_id, the_id.upper()), headers=auth)
    assert (fast.status_code, fast.content) == (routed.status_code, routed.content)
    for header in ("content-type", "content-length"):
        assert fast.headers[header] == routed.headers[header], header
    return fast


def test_an_event_and_its_jobs_read_the_same_on_both_paths(
        client: httpx.Client, auth: dict[str, str], user_id: str, topics: Topics) -> None:
    event_id = create(client, auth)
    event_path = f"/api/events/{event_id}"
    assert both_paths(client, auth, event_path, event_id).json()["status"] == "DRAFT"
    ai = client.post(f"{event_path}/ai-recommendations", json={}, headers=auth).json()["jobId"]
    ai_path = f"/api/events/jobs/{ai}/status"
    assert both_paths(client, auth, ai_path, ai).json()["status"] == "PENDING"
    topics.apply(RECOMMENDATION, event_id, user_id, "RecommendationJobProgress",
                 {"jobId": ai, "progress": 30})
    assert both_paths(client, auth, ai_path, ai).json()["status"] == "PROCESSING"
    topics.send(RECOMMENDATION, event_id, user_id, "RecommendationsGenerated",
                {"jobId": ai, "trendAnalysis": TRENDS, "recommendations": recommendations()})
    completed(client, auth, ai)
    done = both_paths(client, auth, ai_path, ai).json()
    assert (done["status"], len(done["recommendations"]), done["trendAnalysis"]) == (
        "COMPLETED", 3, TRENDS)

    image = client.post(f"{event_path}/content-generation", headers=auth, json={
        "styles": ["SIMPLE"], "platforms": ["INSTAGRAM"]}).json()["jobId"]
    topics.send(IMAGE, event_id, user_id, "ImagesGenerated", {"jobId": image, "images": [
        {"imageId": str(uuid.uuid4()), "imageUrl": "http://img/a.png", "style": "SIMPLE",
         "platform": "INSTAGRAM"}]})
    completed(client, auth, image)
    assert len(both_paths(client, auth, f"/api/events/jobs/{image}/status",
                          image).json()["images"]) == 1
    event = both_paths(client, auth, event_path, event_id).json()
    assert len(event["recommendations"]) == 3 and len(event["images"]) == 1

    failed = client.post(f"{event_path}/ai-recommendations", json={},
                         headers=auth).json()["jobId"]
    topics.send(RECOMMENDATION, event_id, user_id, "RecommendationJobFailed",
                {"jobId": failed, "error": "AI 분석 실패"})
    until(lambda: job_status(client, auth, failed)["status"] == "FAILED")
    assert both_paths(client, auth, f"/api/events/jobs/{failed}/status",
                      failed).json()["error"] == "AI 분석 실패"

    # Discarded, the draft leaves both stores and its jobs stay, the same on both paths
    # (their results went with the event).
    assert client.delete(event_path, headers=auth).status_code == 204
    gone = both_paths(client, auth, ai_path, ai).json()
    assert (gone["status"], gone["recommendations"]) == ("COMPLETED", [])


def bad_tokens(settings: Settings) -> dict[str, dict[str, str]]:
    user, now = str(uuid.uuid4()), int(time.time())
    signed = {
        "expired": issue_token(settings, user, ttl_seconds=-10),
        "another key": jwt.encode({"sub": user, "exp": now + 60},
                                  "another-secret-of-enough-length-xx", algorithm="HS256"),
        "alg none": jwt.encode({"sub": user, "exp": now + 60}, None, algorithm="none"),
        "no exp": jwt.encode({"sub": user}, settings.jwt_secret, algorithm="HS256"),
        "sub not a uuid": jwt.encode({"sub": "not-a-uuid", "exp": now + 60},
                                     settings.jwt_secret, algorithm="HS256"),
    }
    good = issue_token(settings, user)
    return {"none": {}, "Basic scheme": {"Authorization": f"Basic {good}"},
            "Bearer alone": {"Authorization": "Bearer"},
            "garbage": {"Authorization": "Bearer not.a.jwt"},
            **{name: {"Authorization": f"Bearer {t}"} for name, t in signed.items()}}


def test_no_or_a_bad_token_is_401_on_both_reads(client: httpx.Client, auth: dict[str, str],
                                                settings: Settings) -> None:
    event_id = create(client, auth)
    job = client.post(f"/api/events/{event_id}/ai-recommendations", json={},
                      headers=auth).json()["jobId"]
    for path in (f"/api/events/{event_id}", f"/api/events/jobs/{job}/status"):
        for name, headers in bad_tokens(settings).items():
            answer = client.get(path, headers=headers)
            assert answer.status_code == 401, (path, name, answer.text)
            assert answer.json()["code"] == "AUTH_001", (path, name)
            assert answer.headers["www-authenticate"] == "Bearer", (path, name)
        assert client.get(path, headers=auth).status_code == 200  # the owner's token


def test_someone_elses_event_and_job_are_not_found(client: httpx.Client,
                                                   auth: dict[str, str],
                                                   settings: Settings) -> None:
    event_id = create(client, auth)
    job = client.post(f"/api/events/{event_id}/ai-recommendations", json={},
                      headers=auth).json()["jobId"]
    stranger = headers_for(settings, str(uuid.uuid4()))
    for path, code in ((f"/api/events/{event_id}", "EVENT_005"),
                       (f"/api/events/{uuid.uuid4()}", "EVENT_005"),
                       (f"/api/events/jobs/{job}/status", "JOB_001"),
                       (f"/api/events/jobs/{uuid.uuid4()}/status", "JOB_001")):
        headers = stranger if event_id in path or job in path else auth
        answer = client.get(path, headers=headers)
        assert (answer.status_code, answer.json()["code"]) == (404, code), path
    assert client.get("/api/events/not-a-uuid", headers=auth).status_code == 422


def test_a_redis_miss_is_answered_from_postgresql(client: httpx.Client, auth: dict[str, str],
                                                  rds: redis.Redis, api_url: str) -> None:
    event_id = create(client, auth)
    job = client.post(f"/api/events/{event_id}/ai-recommendations", json={},
                      headers=auth).json()["jobId"]
    paths = (f"/api/events/{event_id}", f"/api/events/jobs/{job}/status")
    from_redis = [client.get(p, headers=auth).json() for p in paths]
    missed = metric(api_url, "eventpipe_api_read_fallbacks_total", 'reason="miss"')
    rds.delete(draft_key(event_id), job_key(job))
    from_postgres = [client.get(p, headers=auth) for p in paths]
    assert [a.status_code for a in from_postgres] == [200, 200]
    assert [a.json() for a in from_postgres] == from_redis
    assert metric(api_url, "eventpipe_api_read_fallbacks_total",
                  'reason="miss"') >= missed + 2


def test_a_get_right_after_an_edit_sees_the_edit(client: httpx.Client,
                                                 auth: dict[str, str]) -> None:
    event_id = create(client, auth)
    for n in range(10):
        edited = client.patch(f"/api/events/{event_id}", headers=auth,
                              json={"eventName": f"이름 {n}", "channels": ["INSTAGRAM"]})
        assert edited.status_code == 200, edited.text
        seen = client.get(f"/api/events/{event_id}", headers=auth)
        assert seen.status_code == 200
        assert seen.json() == edited.json()


def test_a_read_with_a_body_over_the_limit_is_413(client: httpx.Client, auth: dict[str, str],
                                                  settings: Settings) -> None:
    event_id = create(client, auth)
    answer = client.request("GET", f"/api/events/{event_id}", headers=auth,
                            content=b"x" * (settings.api_max_body_bytes + 1))
    assert (answer.status_code, answer.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")


def test_fast_reads_are_counted_per_route_and_logged(client: httpx.Client,
                                                     auth: dict[str, str],
                                                     api_url: str) -> None:
    event_id = create(client, auth)
    labels = 'method="GET",route="/api/events/{eventId}",status="200"'
    before = metric(api_url, "eventpipe_api_requests_total", labels)
    for _ in range(5):
        assert client.get(f"/api/events/{event_id}", headers=auth).status_code == 200
    assert metric(api_url, "eventpipe_api_requests_total", labels) == before + 5
    line = f'"GET /api/events/{event_id} HTTP/1.1" 200 OK'

    def logged() -> Any:
        return (LOGS / "test-api.log").read_text().count(line) >= 5

    assert until(logged, 10)
