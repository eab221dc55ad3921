"""Request and response bodies (camelCase JSON, as in the seeds)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Accepted", "ErrorBody", "EventView", "PurposeDraft", "PurposeRequest"]

_MAX_TEXT = 200


class PurposeRequest(BaseModel):
    """Store fields are checked by the service (EVENT_002), not by the schema, as in seed 001."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "objective": "신규 고객 유치", "storeName": "맛있는집", "industry": "음식점",
        "address": "서울시 강남구",
    }]})

    objective: str = Field(max_length=_MAX_TEXT, description="Korean label or code")
    storeName: str | None = Field(None, max_length=_MAX_TEXT)
    industry: str | None = Field(None, max_length=100)
    address: str | None = Field(None, max_length=500)
    storeId: str | None = Field(None, pattern=r"^[0-9a-fA-F-]{32,36}$")


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


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[Any] | None = None


class EventView(BaseModel):
    eventId: str
    userId: str
    storeId: str
    status: str
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
    images: list[dict[str, Any]]
    selectedRecommendationId: str | None
    selectedImageId: str | None
    selectedImageUrl: str | None
    jobs: list[dict[str, Any]]
    distributionResults: list[dict[str, Any]]
    createdAt: str
    updatedAt: str
