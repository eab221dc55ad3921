"""Who writes the recommendations: the explicit rules, or an OpenAI-compatible endpoint.

`OpenAIProvider` asks a chat-completions endpoint for the same JSON the rules produce, with
the SDK's timeout and retries; the answer is validated (exactly three recommendations, every
field a non-empty string within the database's column sizes). Any failure - timeout, HTTP
error after the retries, invalid JSON, a schema violation - logs a warning and falls back to
the rules, so a job never fails because the model did. Recommendation ids are always ours
(uuid5 of jobId and tier), never the model's, so a replayed job keeps its ids.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Protocol

import openai
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from eventpipe.settings import Settings
from streams.vocabulary import DESCRIPTION_CHARS, OBJECTIVE_LABELS, TEXT_LIMITS, Objective
from workers.recommendations import TIERS, recommend, recommendation_id, season_of

__all__ = [
    "OpenAIProvider",
    "Proposal",
    "RecommendationProvider",
    "RuleProvider",
    "Source",
    "provider_for",
]

log = logging.getLogger(__name__)

Source = Literal["rules", "openai"]


class Proposal(dict[str, Any]):
    """The RecommendationsGenerated payload (minus jobId), plus who wrote it.

    A plain dict to every consumer (Avro encoding, JSON); `source` and `fallback_reason` are
    attributes, not keys, so the payload keeps exactly the schema's shape.
    """

    def __init__(self, payload: Mapping[str, Any], source: Source,
                 fallback_reason: str | None = None) -> None:
        super().__init__(payload)
        self.source: Source = source
        self.fallback_reason = fallback_reason


class RecommendationProvider(Protocol):
    async def propose(self, job: Mapping[str, Any]) -> Proposal: ...

    async def close(self) -> None: ...


class RuleProvider:
    async def propose(self, job: Mapping[str, Any]) -> Proposal:
        return Proposal(recommend(job), "rules")

    async def close(self) -> None:
        """Nothing to release."""


# The model's answer, checked before use, held to the sizes of the ai_recommendations columns.
def _text(max_length: int = 1000) -> Any:
    return StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length)


class _Recommendation(BaseModel):
    model_config = ConfigDict(extra="ignore")  # a model-made recommendationId is dropped
    title: Annotated[str, _text(TEXT_LIMITS["title"])]
    prize: Annotated[str, _text(TEXT_LIMITS["prize"])]
    method: Annotated[str, _text(TEXT_LIMITS["method"])]
    cost: Annotated[str, _text(TEXT_LIMITS["cost"])]
    roi: Annotated[str, _text(TEXT_LIMITS["roi"])]
    promotionType: Annotated[str, _text(TEXT_LIMITS["promotionType"])]
    targetAudience: Annotated[str, _text(TEXT_LIMITS["targetAudience"])]
    description: Annotated[str, _text(DESCRIPTION_CHARS)]


class _TrendAnalysis(BaseModel):
    industryTrends: list[Annotated[str, _text()]] = Field(min_length=1)
    regionalTrends: list[Annotated[str, _text()]] = Field(min_length=1)
    seasonalTrends: list[Annotated[str, _text()]] = Field(min_length=1)


class _Answer(BaseModel):
    trendAnalysis: _TrendAnalysis
    recommendations: list[_Recommendation] = Field(min_length=3, max_length=3)


_SYSTEM_PROMPT = (
    "당신은 한국 소상공인의 마케팅 이벤트 기획 전문가입니다. 매장 정보와 이벤트 목적을 받아 "
    "트렌드 분석과 이벤트 추천안 정확히 3개를 한국어로 작성합니다. 추천안은 저비용, 중비용, "
    "고비용 순서입니다. 다른 설명 없이 다음 형태의 JSON 객체 하나만 답하세요: "
    '{"trendAnalysis": {"industryTrends": [문자열...], "regionalTrends": [문자열...], '
    '"seasonalTrends": [문자열...]}, "recommendations": [{"title": 문자열, "prize": 문자열, '
    '"method": 문자열, "cost": 문자열, "roi": 문자열, '
    f'"promotionType": 문자열({TEXT_LIMITS["promotionType"]}자 이내), '
    f'"targetAudience": 문자열({TEXT_LIMITS["targetAudience"]}자 이내), '
    '"description": 문자열}, ...3개]}'
)


def _user_prompt(job: Mapping[str, Any]) -> str:
    objective = Objective(job["objective"])
    facts = {
        "storeName": job["storeName"],
        "industry": job["industry"],
        "region": job["region"],
        "objective": f"{objective.value} ({OBJECTIVE_LABELS[objective]})",
        "season": season_of(job["requestedAt"]).name,
        "budgets": {tier.label: {"cost": tier.cost, "targetRoi": tier.roi} for tier in TIERS},
    }
    return json.dumps(facts, ensure_ascii=False)


class OpenAIProvider:
    """Chat completions in JSON mode; the rules whenever the endpoint fails us."""

    def __init__(self, settings: Settings) -> None:
        self._model = settings.openai_model
        self._client = openai.AsyncOpenAI(
            base_url=settings.openai_base_url, api_key=settings.openai_api_key,
            timeout=settings.ai_timeout_seconds, max_retries=settings.ai_retries)

    async def propose(self, job: Mapping[str, Any]) -> Proposal:
        try:
            answer = await self._ask(job)
        except (openai.OpenAIError, ValidationError) as exc:
            # OpenAIError covers timeouts, connection and HTTP errors (after the SDK's
            # retries); ValidationError covers invalid JSON and schema violations.
            reason = f"{type(exc).__name__}: {exc}"
            log.warning("AI provider failed for job %s, using the rules: %s", job["jobId"], reason)
            return Proposal(recommend(job), "rules", reason)
        payload = answer.model_dump()
        for tier, item in zip(TIERS, payload["recommendations"], strict=True):
            item["recommendationId"] = recommendation_id(job["jobId"], tier)
        return Proposal(payload, "openai")

    async def _ask(self, job: Mapping[str, Any]) -> _Answer:
        response = await self._client.chat.completions.create(
            model=self._model,
            messages=[{"role": "system", "content": _SYSTEM_PROMPT},
                      {"role": "user", "content": _user_prompt(job)}],
            response_format={"type": "json_object"},
            temperature=0,
        )
        content = response.choices[0].message.content if response.choices else None
        # An empty answer fails validation like any other malformed one.
        return _Answer.model_validate_json(content or "")

    async def close(self) -> None:
        await self._client.close()


def provider_for(settings: Settings) -> RecommendationProvider:
    if settings.ai_provider == "openai" and settings.openai_base_url:
        return OpenAIProvider(settings)
    return RuleProvider()
