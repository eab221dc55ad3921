"""Issue 3: the whole event lifecycle through the topics alone, on the real stack."""

from __future__ import annotations

import json
import uuid
from datetime import date
from typing import Any

import psycopg
import pytest

from eventpipe.settings import Settings
from streams.topics import (
    AI_JOB,
    CONTENT_JOB,
    DISTRIBUTION_JOB,
    EVENT_TOPIC,
    IMAGE,
    PUBLISH,
    PURPOSE,
    RECOMMENDATION,
)
from tests.kafka_helpers import read_avro, window_start
from tests.pipeline import Topics

STORE = {"objective": "SALES_GROWTH", "storeName": "해피카페", "industry": "카페",
         "address": "부산시 해운대구", "storeId": None}


def recommendations() -> list[dict[str, Any]]:
    return [
        {"recommendationId": str(uuid.uuid4()), "title": f"{tier} 추천안", "prize": prize,
         "method": "SNS 공유", "cost": cost, "roi": roi, "promotionType": "DISCOUNT",
         "targetAudience": "20-30대", "description": f"{tier} 이벤트"}
        for tier, prize, cost, roi in (("저비용", "커피쿠폰", "50만원", "150%"),
                                        ("중비용", "상품권", "100만원", "200%"),
                                        ("고비용", "경품 추첨", "200만원", "300%"))
    ]


TRENDS = {"industryTrends": ["디저트 세트"], "regionalTrends": ["관광객 증가"],
          "seasonalTrends": ["겨울 음료"]}


def by_key(event_id: str):
    return lambda key, value: key == event_id.encode()


def new_draft(topics: Topics, user: str) -> str:
    event_id = str(uuid.uuid4())
    assert topics.apply(PURPOSE, event_id, user, "PurposeSelected", STORE)["status"] == "ACCEPTED"
    return event_id


def generate_recommendations(topics: Topics, event_id: str, user: str) -> list[dict[str, Any]]:
    """Request an AI job and answer it, as the AI worker would; returns the three."""
    job = str(uuid.uuid4())
    topics.apply(RECOMMENDATION, event_id, user, "RecommendationRequested", {"jobId": job})
    recs = recommendations()
    topics.apply(RECOMMENDATION, event_id, user, "RecommendationsGenerated",
                 {"jobId": job, "trendAnalysis": TRENDS, "recommendations": recs})
    return recs


def ready_draft(topics: Topics, user: str) -> str:
    """A draft with a recommendation and an image selected, dates and channels set."""
    event_id = new_draft(topics, user)
    recs = generate_recommendations(topics, event_id, user)
    topics.apply(RECOMMENDATION, event_id, user, "RecommendationSelected",
                 {"recommendationId": recs[1]["recommendationId"], "eventName": None,
                  "description": None})
    image_job = str(uuid.uuid4())
    topics.apply(IMAGE, event_id, user, "ImageGenerationRequested",
                 {"jobId": image_job, "styles": ["SIMPLE"], "platforms": ["INSTAGRAM"]})
    image = {"imageId": str(uuid.uuid4()), "imageUrl": "http://img/1.png", "style": "SIMPLE",
             "platform": "INSTAGRAM"}
    topics.apply(IMAGE, event_id, user, "ImagesGenerated", {"jobId": image_job,
                                                            "images": [image]})
    topics.apply(IMAGE, event_id, user, "ImageSelected", {"imageId": image["imageId"]})
    topics.apply(PURPOSE, event_id, user, "DraftUpdated", {
        "eventName": None, "description": None, "startDate": date(2026, 12, 1),
        "endDate": date(2026, 12, 31), "channels": ["INSTAGRAM", "KAKAO_CHANNEL"]})
    return event_id


def test_whole_lifecycle_through_topics(topics: Topics, settings: Settings,
                                        pg: psycopg.Connection) -> None:
    user = str(uuid.uuid4())
    since = window_start()
    event_id = new_draft(topics, user)

    # AI recommendations: request -> job on ai-job-topic -> progress -> three results.
    job = str(uuid.uuid4())
    assert topics.apply(RECOMMENDATION, event_id, user, "RecommendationRequested",
                        {"jobId": job})["status"] == "ACCEPTED"
    assert topics.rds.hgetall(f"job:status:{job}")["status"] == "PENDING"
    topics.apply(RECOMMENDATION, event_id, user, "RecommendationJobProgress",
                 {"jobId": job, "progress": 40})
    assert topics.rds.hgetall(f"job:status:{job}")["status"] == "PROCESSING"
    assert topics.rds.hgetall(f"job:status:{job}")["progress"] == "40"
    recs = recommendations()
    topics.apply(RECOMMENDATION, event_id, user, "RecommendationsGenerated",
                 {"jobId": job, "trendAnalysis": TRENDS, "recommendations": recs})
    status = topics.rds.hgetall(f"job:status:{job}")
    assert (status["status"], status["progress"]) == ("COMPLETED", "100")
    assert len(topics.event(event_id)["recommendations"]) == 3
    assert topics.rds.exists(f"ai:recommendation:{event_id}")
    topics.apply(RECOMMENDATION, event_id, user, "RecommendationSelected",
                 {"recommendationId": recs[0]["recommendationId"], "eventName": "겨울 커피 축제",
                  "description": None})

    # Images: request -> job on content-job-topic -> results -> selection.
    image_job = str(uuid.uuid4())
    topics.apply(IMAGE, event_id, user, "ImageGenerationRequested",
                 {"jobId": image_job, "styles": ["SIMPLE", "TRENDY"],
                  "platforms": ["INSTAGRAM"]})
    images = [{"imageId": str(uuid.uuid4()), "imageUrl": f"http://img/{s}.png", "style": s,
               "platform": "INSTAGRAM"} for s in ("SIMPLE", "TRENDY")]
    topics.apply(IMAGE, event_id, user, "ImagesGenerated", {"jobId": image_job,
                                                            "images": images})
    topics.apply(IMAGE, event_id, user, "ImageSelected", {"imageId": images[1]["imageId"]})

    # Dates and channels, then publish.
    topics.apply(PURPOSE, event_id, user, "DraftUpdated", {
        "eventName": None, "description": "따뜻한 겨울", "startDate": date(2026, 12, 1),
        "endDate": date(2026, 12, 31), "channels": ["INSTAGRAM", "NAVER_BLOG"]})
    published = topics.apply(PUBLISH, event_id, user, "PublishRequested", {"channels": None})
    assert published["status"] == "ACCEPTED", published
    topics.apply(PUBLISH, event_id, user, "DistributionCompleted", {"results": [
        {"channel": "INSTAGRAM", "status": "SUCCESS", "message": None},
        {"channel": "NAVER_BLOG", "status": "FAILED", "message": "timeout"}]})
    assert topics.apply(PUBLISH, event_id, user, "EventEndRequested",
                        {"reason": None})["status"] == "ACCEPTED"

    # The final state, as both projections hold it.
    doc = topics.event(event_id)
    assert doc["status"] == "ENDED"
    assert doc["eventName"] == "겨울 커피 축제" and doc["description"] == "따뜻한 겨울"
    assert doc["selectedRecommendationId"] == recs[0]["recommendationId"]
    assert doc["selectedImageId"] == images[1]["imageId"]
    assert doc["selectedImageUrl"] == "http://img/TRENDY.png"
    assert [r["isSelected"] for r in doc["recommendations"]] == [True, False, False]
    assert doc["distributionResults"] == [
        {"channel": "INSTAGRAM", "status": "SUCCESS", "message": None},
        {"channel": "NAVER_BLOG", "status": "FAILED", "message": "timeout"}]
    assert {j["jobId"]: j["status"] for j in doc["jobs"]} == {job: "COMPLETED",
                                                              image_job: "COMPLETED"}
    row = pg.execute("SELECT status, event_name, selected_image_id::text, published_at IS NOT NULL,"
                     " ended_at IS NOT NULL FROM events WHERE event_id = %s",
                     (event_id,)).fetchone()
    assert row == ("ENDED", "겨울 커피 축제", images[1]["imageId"], True, True)
    assert pg.execute("SELECT count(*), count(*) FILTER (WHERE is_selected) FROM"
                      " ai_recommendations WHERE event_id = %s", (event_id,)).fetchone() == (3, 1)
    assert pg.execute("SELECT count(*), count(*) FILTER (WHERE is_selected) FROM"
                      " generated_images WHERE event_id = %s", (event_id,)).fetchone() == (2, 1)
    assert sorted(pg.execute("SELECT job_type, status, progress FROM jobs WHERE event_id = %s",
                             (event_id,)).fetchall()) == [
        ("AI_RECOMMENDATION", "COMPLETED", 100), ("IMAGE_GENERATION", "COMPLETED", 100)]

    # The jobs' facts, read once the lifecycle is over: a read while a job was open raced the
    # suite's 15 s job timer (one read of a busy topic took 20 s, and the job timed out).
    ai_jobs = read_avro(settings, AI_JOB.name, since, by_key(event_id))
    assert [(str(v["jobId"]), v["objective"], v["industry"], v["region"])
            for _, v in ai_jobs] == [(job, "SALES_GROWTH", "카페", "부산시 해운대구")]
    content_jobs = read_avro(settings, CONTENT_JOB.name, since, by_key(event_id))
    assert [(str(v["jobId"]), v["styles"], v["platforms"]) for _, v in content_jobs] == [
        (image_job, ["SIMPLE", "TRENDY"], ["INSTAGRAM"])]
    distribution = read_avro(settings, DISTRIBUTION_JOB.name, since, by_key(event_id))
    assert [(v["title"], v["channels"], v["imageUrl"]) for _, v in distribution] == [
        ("겨울 커피 축제", ["INSTAGRAM", "NAVER_BLOG"], "http://img/TRENDY.png")]

    # event-topic: the draft, then the publication.
    facts = read_avro(settings, EVENT_TOPIC.name, since, by_key(event_id))
    assert [sorted(v["payload"]) for _, v in facts] == [
        ["createdAt", "eventDraftId", "objective", "userId"],
        ["createdAt", "eventId", "objective", "title", "userId"]]
    assert facts[1][1]["payload"]["title"] == "겨울 커피 축제"


def test_a_new_generation_replaces_the_set_and_its_selection(topics: Topics,
                                                             pg: psycopg.Connection) -> None:
    user = str(uuid.uuid4())
    event_id = ready_draft(topics, user)
    fresh = generate_recommendations(topics, event_id, user)
    doc = topics.event(event_id)
    assert [r["recommendationId"] for r in doc["recommendations"]] == [
        r["recommendationId"] for r in fresh]
    assert doc["selectedRecommendationId"] is None
    ids = {str(r[0]) for r in pg.execute(
        "SELECT recommendation_id FROM ai_recommendations WHERE event_id = %s",
        (event_id,)).fetchall()}
    assert ids == {r["recommendationId"] for r in fresh}


def test_the_same_command_twice_has_one_effect(topics: Topics) -> None:
    user = str(uuid.uuid4())
    event_id = new_draft(topics, user)
    update = {"eventName": "한 번만", "description": None, "startDate": None, "endDate": None,
              "channels": None}
    command_id = topics.send(PURPOSE, event_id, user, "DraftUpdated", update)
    topics.outcome(command_id)
    version = topics.version(event_id)
    topics.send(PURPOSE, event_id, user, "DraftUpdated", update, command_id=command_id)
    marker = topics.apply(PURPOSE, event_id, user, "DraftUpdated", {**update, "eventName": "끝"})
    assert marker["status"] == "ACCEPTED"
    assert topics.version(event_id) == version + 1  # the repeat added no version


def test_a_discarded_draft_leaves_the_stores_but_its_jobs_stay(
        topics: Topics, pg: psycopg.Connection) -> None:
    user = str(uuid.uuid4())
    event_id = new_draft(topics, user)
    job = str(uuid.uuid4())
    topics.apply(RECOMMENDATION, event_id, user, "RecommendationRequested", {"jobId": job})
    assert topics.apply(PURPOSE, event_id, user, "DraftDiscarded",
                        {"reason": None})["status"] == "ACCEPTED"
    assert topics.event(event_id) is None
    assert pg.execute("SELECT count(*) FROM events WHERE event_id = %s",
                      (event_id,)).fetchone() == (0,)
    assert pg.execute("SELECT status FROM jobs WHERE job_id = %s", (job,)).fetchone() == (
        "PENDING",)
    again = topics.apply(PURPOSE, event_id, user, "DraftUpdated", {
        "eventName": "x", "description": None, "startDate": None, "endDate": None,
        "channels": None})
    assert again["code"] == "EVENT_005"


# ------------------------------------------------------------------ rejections

@pytest.fixture
def user() -> str:
    return str(uuid.uuid4())


def _rejected(topics: Topics, event_id: str, user: str, spec: Any, command: str,
              payload: dict[str, Any]) -> dict[str, str]:
    before = (topics.version(event_id), topics.event(event_id))
    outcome = topics.apply(spec, event_id, user, command, payload)
    assert outcome["status"] == "REJECTED"
    assert (topics.version(event_id), topics.event(event_id)) == before  # nothing changed
    return outcome


def test_blank_store_info_is_event_002(topics: Topics, user: str) -> None:
    event_id = str(uuid.uuid4())
    outcome = topics.apply(PURPOSE, event_id, user, "PurposeSelected",
                           {**STORE, "storeName": " ", "industry": ""})
    assert outcome["status"] == "REJECTED" and outcome["code"] == "EVENT_002"
    assert set(json.loads(outcome["details"])) == {"storeName", "industry"}
    assert topics.event(event_id) is None


def test_wrong_state_is_event_003(topics: Topics, user: str) -> None:
    event_id = new_draft(topics, user)
    assert _rejected(topics, event_id, user, PUBLISH, "EventEndRequested",
                     {"reason": None})["code"] == "EVENT_003"
    assert _rejected(topics, event_id, user, PURPOSE, "PurposeSelected",
                     STORE)["code"] == "EVENT_003"
    published = ready_draft(topics, user)
    topics.apply(PUBLISH, published, user, "PublishRequested", {"channels": None})
    for spec, command, payload in (
        (PURPOSE, "DraftUpdated", {"eventName": "x", "description": None, "startDate": None,
                                   "endDate": None, "channels": None}),
        (PURPOSE, "DraftDiscarded", {"reason": None}),
        (RECOMMENDATION, "RecommendationRequested", {"jobId": str(uuid.uuid4())}),
        (IMAGE, "ImageGenerationRequested", {"jobId": str(uuid.uuid4()), "styles": ["FANCY"],
                                             "platforms": ["GENIE_TV"]}),
        (PUBLISH, "PublishRequested", {"channels": None}),
    ):
        assert _rejected(topics, published, user, spec, command, payload)["code"] == "EVENT_003"


def test_not_ready_is_event_004_with_the_missing_items(topics: Topics, user: str) -> None:
    event_id = new_draft(topics, user)
    outcome = _rejected(topics, event_id, user, PUBLISH, "PublishRequested", {"channels": None})
    assert outcome["code"] == "EVENT_004"
    assert json.loads(outcome["details"]) == [
        "selectedRecommendation", "selectedImage", "channels", "startDate", "endDate"]


def test_unknown_or_foreign_event_is_event_005(topics: Topics, user: str) -> None:
    event_id = new_draft(topics, user)
    stranger = str(uuid.uuid4())
    payload = {"eventName": "x", "description": None, "startDate": None, "endDate": None,
               "channels": None}
    foreign = _rejected(topics, event_id, stranger, PURPOSE, "DraftUpdated", payload)
    missing = topics.apply(PURPOSE, str(uuid.uuid4()), user, "DraftUpdated", payload)
    assert foreign["code"] == missing["code"] == "EVENT_005"
    assert foreign["message"] == missing["message"]
    assert _rejected(topics, event_id, user, RECOMMENDATION, "RecommendationSelected", {
        "recommendationId": str(uuid.uuid4()), "eventName": None,
        "description": None})["code"] == "EVENT_005"


def test_start_after_end_is_event_006(topics: Topics, user: str) -> None:
    event_id = new_draft(topics, user)
    assert _rejected(topics, event_id, user, PURPOSE, "DraftUpdated", {
        "eventName": None, "description": None, "startDate": date(2026, 12, 31),
        "endDate": date(2026, 12, 1), "channels": None})["code"] == "EVENT_006"
