"""Request and response bodies (camelCase JSON, as in the seeds)."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from streams import vocabulary
from streams.vocabulary import DESCRIPTION_CHARS, TEXT_LIMITS, Channel, EventStatus, ImageStyle

__all__ = [
    "COMMON_RESPONSES",
    "EVENT_RESPONSES",
    "Accepted",
    "ContentGenerationRequest",
    "ErrorBody",
    "EventPage",
    "EventView",
    "JobAccepted",
    "JobView",
    "PatchEventRequest",
    "PublishRequest",
    "PublishResult",
    "PurposeDraft",
    "PurposeRequest",
    "RecommendationRequest",
    "SelectRecommendationRequest",
]

_NAME, _TEXT = TEXT_LIMITS["eventName"], DESCRIPTION_CHARS
# What a user can list by: every status but DISCARDED, which only the changelog keeps.
ListableStatus = Literal["DRAFT", "PUBLISHED", "ENDED"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PurposeRequest(_Body):
    """Store fields are checked by the service, not by the schema, so a missing one gets
    its own code (EVENT_002)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "objective": "신규 고객 유치", "storeName": "맛있는집", "industry": "음식점",
        "address": "서울시 강남구",
    }]})

    objective: str = Field(max_length=_NAME, description="Korean label or code")
    storeName: str | None = Field(None, max_length=TEXT_LIMITS["storeName"])
    industry: str | None = Field(None, max_length=TEXT_LIMITS["industry"])
    address: str | None = Field(None, max_length=TEXT_LIMITS["address"])
    storeId: uuid.UUID | None = None


class PatchEventRequest(_Body):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "eventName": "겨울 커피 축제", "startDate": "2026-12-01", "endDate": "2026-12-31",
        "channels": ["INSTAGRAM", "KAKAO_CHANNEL"],
    }]})

    eventName: str | None = Field(None, min_length=1, max_length=_NAME)
    description: str | None = Field(None, max_length=_TEXT)
    startDate: date | None = None
    endDate: date | None = None
    channels: list[Channel] | None = Field(None, max_length=len(Channel))

    @model_validator(mode="after")
    def _something(self) -> PatchEventRequest:
        if not self.model_fields_set:
            raise ValueError("give at least one of eventName, description, startDate, "
                             "endDate, channels")
        return self


class RecommendationRequest(_Body):
    """`{}`: the draft's objective and store are what the AI works from."""


class SelectRecommendationRequest(_Body):
    recommendationId: uuid.UUID
    eventName: str | None = Field(None, min_length=1, max_length=_NAME)
    description: str | None = Field(None, max_length=_TEXT)


class ContentGenerationRequest(_Body):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "styles": ["SIMPLE", "TRENDY"], "platforms": ["INSTAGRAM", "GENIE_TV"]}]})

    styles: list[ImageStyle] = Field(min_length=1, max_length=len(ImageStyle))
    platforms: list[Channel] = Field(min_length=1, max_length=len(Channel))


class PublishRequest(_Body):
    channels: list[Channel] | None = Field(None, min_length=1, max_length=len(Channel))


class PurposeDraft(BaseModel):
    eventDraftId: str
    objective: str
    storeName: str
    status: Literal["DRAFT"] = "DRAFT"


class Accepted(BaseModel):
    """The command is in the pipeline; poll GET /api/events/commands/{commandId}."""

    commandId: str
    status: Literal["PENDING"] = "PENDING"
    eventId: str | None = None


class JobAccepted(BaseModel):
    jobId: str
    status: Literal["PENDING"] = "PENDING"


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[Any] | None = None


# Every /api route can answer these; declared once so the OpenAPI document says so.
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "AUTH_001: no or bad token"},
    422: {"model": ErrorBody, "description": "VALIDATION_ERROR: malformed request"},
    503: {"model": ErrorBody, "description": "SERVICE_UNAVAILABLE: a store or the broker is down"},
}

# Routes on one event: it may be missing (or another user's), or in the wrong state.
EVENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    **COMMON_RESPONSES,
    404: {"model": ErrorBody, "description": "EVENT_005: no such event (or not yours)"},
    409: {"model": ErrorBody, "description": "EVENT_003: wrong state for this command"},
}


class EventView(BaseModel):
    eventId: str
    userId: str
    storeId: str
    status: EventStatus
    objective: str
    storeName: str
    industry: str
    address: str
    eventName: str | None
    description: str | None
    startDate: str | None
    endDate: str | None
    channels: list[str]
    recommendations: list[dict[str, Any]]
    trendAnalysis: dict[str, Any] | None = None
    images: list[dict[str, Any]]
    selectedRecommendationId: str | None
    selectedImageId: str | None
    selectedImageUrl: str | None
    jobs: list[dict[str, Any]]
    distributionResults: list[dict[str, Any]]
    createdAt: str
    updatedAt: str


class EventSummary(BaseModel):
    eventId: str
    status: str
    objective: str
    eventName: str | None
    storeName: str
    startDate: str | None
    endDate: str | None
    createdAt: str
    updatedAt: str


class EventPage(BaseModel):
    items: list[EventSummary]
    page: int
    size: int
    total: int


class PublishResult(BaseModel):
    eventId: str
    status: Literal["PUBLISHED", "ENDED"]
    distributionResults: list[dict[str, Any]]


class JobView(BaseModel):
    jobId: str
    jobType: vocabulary.JobType
    status: vocabulary.JobStatus
    progress: int
    message: str | None = None
    error: str | None = None
    recommendations: list[dict[str, Any]] | None = None
    trendAnalysis: dict[str, Any] | None = None
    images: list[dict[str, Any]] | None = None
