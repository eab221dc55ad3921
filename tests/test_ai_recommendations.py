"""AI recommendations: the explicit rules, and the OpenAI-compatible provider against a real
local HTTP server speaking the chat-completions protocol (no Kafka needed)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from eventpipe.settings import Settings
from streams.registry import local_schema
from streams.topics import RECOMMENDATION
from streams.vocabulary import Objective
from workers.ai_provider import OpenAIProvider, RuleProvider, provider_for
from workers.recommendations import (
    INDUSTRIES,
    OBJECTIVES,
    TIERS,
    recommend,
    recommendation_id,
)

JOB: dict[str, Any] = {
    "jobId": "5b0e6f52-3f0e-4a8e-9c54-0a6f7f1d2c01",
    "eventId": "0c6b1b7e-8a44-4c1f-bb4c-6d0f5f0a9e10",
    "userId": "f3d2c1b0-1a2b-4c3d-8e9f-001122334455",
    "objective": "NEW_CUSTOMERS",
    "storeName": "맛있는집",
    "industry": "음식점",
    "region": "서울시 강남구",
    "requestedAt": datetime(2026, 11, 23, 5, 0, tzinfo=UTC),
}


def job(**changes: Any) -> dict[str, Any]:
    return {**JOB, **changes}


def avro_roundtrip(payload: dict[str, Any]) -> dict[str, Any]:
    """Encode a RecommendationsGenerated message with the topic's schema and read it back."""
    schema = parse_schema(local_schema(RECOMMENDATION))
    message = {"commandId": str(uuid.uuid4()), "eventId": JOB["eventId"], "userId": JOB["userId"],
               "occurredAt": datetime(2026, 11, 23, tzinfo=UTC),
               "payload": ("eventpipe.recommendation.RecommendationsGenerated",
                           {"jobId": JOB["jobId"], **payload})}
    buf = io.BytesIO()
    schemaless_writer(buf, schema, message)
    buf.seek(0)
    name, body = schemaless_reader(buf, schema, return_record_name=True)["payload"]
    assert name == "eventpipe.recommendation.RecommendationsGenerated"
    return json.loads(json.dumps(body, default=str))  # uuid logical types come back as UUID


# --- the rules --------------------------------------------------------------------------------

def test_seed_004_example_three_tiers_in_cost_order() -> None:
    result = recommend(JOB)
    assert set(result) == {"trendAnalysis", "recommendations"}
    rows = [(r["title"].split(":")[0], r["prize"], r["method"], r["cost"], r["roi"])
            for r in result["recommendations"]]
    assert rows == [("저비용 추천안", "커피쿠폰", "QR코드 스캔", "50만원", "150%"),
                    ("중비용 추천안", "상품권", "SNS 공유", "100만원", "200%"),
                    ("고비용 추천안", "경품 추첨", "설문 참여", "200만원", "300%")]
    for item in result["recommendations"]:
        assert item["targetAudience"] == "매장 인근 신규 방문 고객"
        assert "맛있는집" in item["description"] and item["prize"] in item["description"]
    trends = result["trendAnalysis"]
    assert trends["regionalTrends"][0].startswith("서울: ")
    assert "강남구 생활권" in trends["regionalTrends"][1]
    assert all(t.startswith("가을: ") for t in trends["seasonalTrends"])


def test_same_job_same_result_and_ids() -> None:
    first, again = recommend(JOB), recommend(dict(JOB))
    assert first == again
    assert recommend(job(jobId=uuid.UUID(JOB["jobId"]))) == first  # as fastavro decodes it
    ids = [r["recommendationId"] for r in first["recommendations"]]
    assert ids == [recommendation_id(JOB["jobId"], tier) for tier in TIERS]
    assert len(set(ids)) == 3 and all(uuid.UUID(i).version == 5 for i in ids)
    other = recommend(job(jobId=str(uuid.uuid4())))
    assert not set(ids) & {r["recommendationId"] for r in other["recommendations"]}


@pytest.mark.parametrize("objective", list(Objective))
def test_objective_decides_methods_promotions_audience(objective: Objective) -> None:
    plan = OBJECTIVES[objective]
    items = recommend(job(objective=objective.value))["recommendations"]
    assert tuple(r["method"] for r in items) == plan.methods
    assert tuple(r["promotionType"] for r in items) == plan.promotion_types
    assert {r["targetAudience"] for r in items} == {plan.target_audience}
    assert all(plan.theme in r["title"] for r in items)


def test_objectives_give_different_content() -> None:
    contents = {o: recommend(job(objective=o.value))["recommendations"] for o in Objective}
    methods = {tuple(r["method"] for r in items) for items in contents.values()}
    assert len(methods) == len(Objective)


def test_industry_keyword_decides_prizes_and_trends() -> None:
    cafe = recommend(job(industry="베이커리 카페"))
    salon = recommend(job(industry="미용실"))
    restaurant = recommend(JOB)
    assert [r["prize"] for r in cafe["recommendations"]] == list(INDUSTRIES[0].prizes)
    assert salon["recommendations"][0]["prize"] == "트리트먼트 무료 쿠폰"
    assert recommend(job(industry="편의점"))["recommendations"][1]["prize"] == "모바일 상품권 1만원"
    trends = {tuple(x["trendAnalysis"]["industryTrends"]) for x in (cafe, salon, restaurant)}
    assert len(trends) == 3


def test_unknown_industry_and_region_fall_back() -> None:
    result = recommend(job(industry="꽃집", region="역삼동 123-4"))
    assert [r["prize"] for r in result["recommendations"]] == ["할인 쿠폰", "모바일 상품권",
                                                              "경품 추첨"]
    assert result["trendAnalysis"]["industryTrends"]
    assert result["trendAnalysis"]["regionalTrends"][0].startswith("지역 상권: ")
    assert "매장 반경 1km 생활권" in result["trendAnalysis"]["regionalTrends"][1]
    empty = recommend(job(region=""))
    assert empty["trendAnalysis"]["regionalTrends"][0].startswith("지역 상권: ")


@pytest.mark.parametrize(("address", "area", "district"), [
    ("부산광역시 해운대구 우동", "부산", "해운대구"),
    ("제주특별자치도 제주시 연동", "제주", "제주시"),
    ("경기도 광주시 오포읍", "경기", "광주시"),  # the province, not the city of 광주
    ("전북특별자치도 전주시", "전라", "전주시"),
])
def test_metro_area_from_the_address(address: str, area: str, district: str) -> None:
    regional = recommend(job(region=address))["trendAnalysis"]["regionalTrends"]
    assert regional[0].startswith(f"{area}: ")
    assert regional[1].startswith(f"{district} 생활권")


def test_season_is_the_month_in_seoul() -> None:
    # 2026-02-28 15:30 UTC is already 1 March in Seoul: spring, not winter.
    spring = recommend(job(requestedAt=datetime(2026, 2, 28, 15, 30, tzinfo=UTC)))
    winter = recommend(job(requestedAt=datetime(2026, 2, 28, 14, 0, tzinfo=UTC)))
    summer = recommend(job(requestedAt=datetime(2026, 7, 1, tzinfo=UTC)))
    assert all(t.startswith("봄: ") for t in spring["trendAnalysis"]["seasonalTrends"])
    assert all(t.startswith("겨울: ") for t in winter["trendAnalysis"]["seasonalTrends"])
    assert "여름 휴가 시즌" in summer["recommendations"][0]["description"]
    assert spring["recommendations"][0]["description"] != \
        winter["recommendations"][0]["description"]


def test_rules_output_is_a_valid_avro_payload() -> None:
    result = recommend(JOB)
    assert avro_roundtrip(result) == {"jobId": JOB["jobId"], **result}


# --- the OpenAI-compatible provider against a local chat-completions server -------------------

@dataclass
class Reply:
    status: int = 200
    content: str | None = None  # the assistant message
    delay: float = 0.0


@dataclass
class ChatServer:
    """Answers POST /v1/chat/completions with scripted replies (the last one repeats)."""

    replies: list[Reply] = field(default_factory=list)
    requests: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.json()))
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        await asyncio.sleep(reply.delay)
        if reply.status != 200:
            # retry-after-ms keeps the SDK's backoff short in tests.
            return web.json_response({"error": {"message": "boom", "type": "server_error"}},
                                     status=reply.status, headers={"retry-after-ms": "20"})
        return web.json_response({
            "id": "chatcmpl-test", "object": "chat.completion", "created": 1_700_000_000,
            "model": "test-model",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": reply.content}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        })


@pytest.fixture
async def chat() -> AsyncIterator[ChatServer]:
    chat = ChatServer()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat.handle)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    chat.url = f"http://127.0.0.1:{server.port}/v1"
    yield chat
    await server.close()


def model_answer(count: int = 3, drop: str | None = None) -> dict[str, Any]:
    recs = [{"recommendationId": "not-ours", "title": f"AI 추천 {i}", "prize": f"AI 경품 {i}",
             "method": "앱 스탬프", "cost": f"{(i + 1) * 30}만원", "roi": "180%",
             "promotionType": "AI 프로모션", "targetAudience": "AI 고객층",
             "description": f"모델이 쓴 설명 {i}"} for i in range(count)]
    if drop:
        del recs[0][drop]
    return {"trendAnalysis": {"industryTrends": ["AI 업종"], "regionalTrends": ["AI 지역"],
                              "seasonalTrends": ["AI 계절"]},
            "recommendations": recs}


def answer_json(answer: dict[str, Any]) -> str:
    return json.dumps(answer, ensure_ascii=False)


def openai_settings(chat: ChatServer, timeout: float = 2.0, retries: int = 1) -> Settings:
    return Settings(ai_provider="openai", openai_base_url=chat.url, openai_api_key="sk-test-123",
                    openai_model="test-model", ai_timeout_seconds=timeout, ai_retries=retries)


async def propose(settings: Settings, the_job: dict[str, Any] = JOB) -> Any:
    provider = OpenAIProvider(settings)
    try:
        return await provider.propose(the_job)
    finally:
        await provider.close()


async def test_valid_answer_is_used_with_our_ids(chat: ChatServer) -> None:
    chat.replies = [Reply(content=answer_json(model_answer()))]
    result = await propose(openai_settings(chat))
    assert result.source == "openai" and result.fallback_reason is None
    assert [r["title"] for r in result["recommendations"]] == ["AI 추천 0", "AI 추천 1",
                                                               "AI 추천 2"]
    assert result["trendAnalysis"]["regionalTrends"] == ["AI 지역"]
    assert [r["recommendationId"] for r in result["recommendations"]] == \
        [r["recommendationId"] for r in recommend(JOB)["recommendations"]]
    assert avro_roundtrip(result) == {"jobId": JOB["jobId"], **result}

    [(headers, body)] = chat.requests
    assert headers["Authorization"] == "Bearer sk-test-123"
    assert body["model"] == "test-model"
    assert body["response_format"] == {"type": "json_object"}
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    assert "NEW_CUSTOMERS" in user and "음식점" in user and "서울시 강남구" in user


async def test_server_error_is_retried_then_answer_used(chat: ChatServer) -> None:
    chat.replies = [Reply(status=500), Reply(content=answer_json(model_answer()))]
    result = await propose(openai_settings(chat, retries=1))
    assert result.source == "openai"
    assert result["recommendations"][0]["title"] == "AI 추천 0"
    assert len(chat.requests) == 2


async def test_errors_after_all_retries_fall_back(chat: ChatServer,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    chat.replies = [Reply(status=503)]
    with caplog.at_level(logging.WARNING, logger="workers.ai_provider"):
        result = await propose(openai_settings(chat, retries=2))
    assert len(chat.requests) == 3  # the first try and two retries
    assert result.source == "rules" and result == recommend(JOB)
    assert "InternalServerError" in (result.fallback_reason or "")
    assert any(JOB["jobId"] in r.getMessage() for r in caplog.records)


async def test_slow_answer_times_out_and_falls_back(chat: ChatServer) -> None:
    chat.replies = [Reply(content=answer_json(model_answer()), delay=1.5)]
    result = await propose(openai_settings(chat, timeout=0.3, retries=0))
    # One request, given up on (an answer waited for would be the model's, not the rules').
    assert len(chat.requests) == 1
    assert result.source == "rules" and result == recommend(JOB)
    assert "Timeout" in (result.fallback_reason or "")


@pytest.mark.parametrize("content", [
    "이것은 JSON이 아닙니다",
    answer_json(model_answer(count=2)),
    answer_json(model_answer(count=4)),
    answer_json(model_answer(drop="prize")),
    answer_json(model_answer()).replace('"AI 고객층"', '"  "'),
    json.dumps({**model_answer(), "trendAnalysis": {"industryTrends": [1],
                                                    "regionalTrends": ["x"],
                                                    "seasonalTrends": ["y"]}}),
    None,
], ids=["not-json", "two", "four", "missing-prize", "blank-field", "non-string-trend", "empty"])
async def test_invalid_answers_fall_back_without_retry(chat: ChatServer,
                                                       content: str | None) -> None:
    chat.replies = [Reply(content=content)]
    result = await propose(openai_settings(chat))
    assert result.source == "rules" and result == recommend(JOB)
    assert "ValidationError" in (result.fallback_reason or "")
    assert len(chat.requests) == 1  # a 200 with a bad body is not retried


async def test_provider_choice_follows_settings(chat: ChatServer) -> None:
    assert isinstance(provider_for(Settings(ai_provider="rules", openai_base_url=chat.url)),
                      RuleProvider)
    assert isinstance(provider_for(Settings(ai_provider="openai", openai_base_url="")),
                      RuleProvider)
    chosen = provider_for(openai_settings(chat))
    assert isinstance(chosen, OpenAIProvider)
    await chosen.close()
    rules = await RuleProvider().propose(JOB)
    assert rules.source == "rules" and rules == recommend(JOB)
