"""The words and sizes of the domain, written once for the rules, the API, the sinks and the
collaborators: enums, error codes and the text limits of the PostgreSQL columns.
`tests/test_contract.py` holds them against the Avro schemas and the migrations."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "CHANNEL_LABELS",
    "DESCRIPTION_CHARS",
    "OBJECTIVE_LABELS",
    "TEXT_COLUMNS",
    "TEXT_LIMITS",
    "Channel",
    "DeliveryStatus",
    "ErrorCode",
    "EventStatus",
    "ImageStyle",
    "JobStatus",
    "JobType",
    "Objective",
    "OutcomeStatus",
    "error_message",
    "parse_objective",
]

# The ERD's column of each text a command carries, by field name: (table, column, characters).
# The API refuses a longer one (422); the rules refuse one produced straight to Kafka (DLQ),
# since it would stop the PostgreSQL projection; the AI's answer is held to them too.
TEXT_COLUMNS: dict[str, tuple[str, str, int]] = {
    "storeName": ("events", "store_name", 200),
    "industry": ("events", "industry", 100),
    "address": ("events", "address", 500),
    "eventName": ("events", "event_name", 200),
    "title": ("ai_recommendations", "event_name", 200),
    "prize": ("ai_recommendations", "prize", 200),
    "method": ("ai_recommendations", "method", 200),
    "cost": ("ai_recommendations", "cost", 100),
    "roi": ("ai_recommendations", "roi", 100),
    "promotionType": ("ai_recommendations", "promotion_type", 50),
    "targetAudience": ("ai_recommendations", "target_audience", 100),
    "imageUrl": ("generated_images", "image_url", 500),
}
TEXT_LIMITS: dict[str, int] = {name: size for name, (_, _, size) in TEXT_COLUMNS.items()}
# Descriptions are TEXT columns: this bound is the API's and the AI answer's, not the ERD's.
DESCRIPTION_CHARS = 5000


class Objective(StrEnum):
    NEW_CUSTOMERS = "NEW_CUSTOMERS"
    REVISIT = "REVISIT"
    SALES_GROWTH = "SALES_GROWTH"
    AWARENESS = "AWARENESS"


OBJECTIVE_LABELS: dict[Objective, str] = {
    Objective.NEW_CUSTOMERS: "신규 고객 유치",
    Objective.REVISIT: "재방문 유도",
    Objective.SALES_GROWTH: "매출 증대",
    Objective.AWARENESS: "인지도 향상",
}
_OBJECTIVE_BY_LABEL = {label: code for code, label in OBJECTIVE_LABELS.items()}


def parse_objective(value: str) -> Objective | None:
    """The Korean label the app shows, or the code; None when it is neither."""
    text = value.strip()
    if text in _OBJECTIVE_BY_LABEL:
        return _OBJECTIVE_BY_LABEL[text]
    try:
        return Objective(text.upper())
    except ValueError:
        return None


class Channel(StrEnum):
    URIDONGNE_TV = "URIDONGNE_TV"
    RINGO_BIZ = "RINGO_BIZ"
    GENIE_TV = "GENIE_TV"
    INSTAGRAM = "INSTAGRAM"
    NAVER_BLOG = "NAVER_BLOG"
    KAKAO_CHANNEL = "KAKAO_CHANNEL"


CHANNEL_LABELS: dict[Channel, str] = {
    Channel.URIDONGNE_TV: "우리동네TV",
    Channel.RINGO_BIZ: "링고비즈",
    Channel.GENIE_TV: "지니TV",
    Channel.INSTAGRAM: "Instagram",
    Channel.NAVER_BLOG: "Naver Blog",
    Channel.KAKAO_CHANNEL: "Kakao Channel",
}


class ImageStyle(StrEnum):
    SIMPLE = "SIMPLE"
    FANCY = "FANCY"
    TRENDY = "TRENDY"


class JobType(StrEnum):
    AI_RECOMMENDATION = "AI_RECOMMENDATION"
    IMAGE_GENERATION = "IMAGE_GENERATION"


class JobStatus(StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class OutcomeStatus(StrEnum):
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"


class DeliveryStatus(StrEnum):
    """One channel's delivery of a published event."""

    SUCCESS = "SUCCESS"
    FAILED = "FAILED"


class EventStatus(StrEnum):
    DRAFT = "DRAFT"
    PUBLISHED = "PUBLISHED"
    ENDED = "ENDED"
    # Kept only in the changelog table, so a replayed command of a thrown-away draft is
    # recognised; the projections delete the event instead (a discarded draft is gone).
    DISCARDED = "DISCARDED"


class ErrorCode(StrEnum):
    EVENT_001 = "EVENT_001"  # invalid objective
    EVENT_002 = "EVENT_002"  # store info missing
    EVENT_003 = "EVENT_003"  # wrong state for the command
    EVENT_004 = "EVENT_004"  # not ready to publish
    EVENT_005 = "EVENT_005"  # unknown event, or another user's
    EVENT_006 = "EVENT_006"  # start_date after end_date
    JOB_001 = "JOB_001"
    BLOB_001 = "BLOB_001"  # an image link whose signature is wrong or has expired
    BLOB_002 = "BLOB_002"  # no such image
    AUTH_001 = "AUTH_001"
    VALIDATION_ERROR = "VALIDATION_ERROR"


_MESSAGES: dict[ErrorCode, str] = {
    ErrorCode.EVENT_001: "유효하지 않은 목적입니다",
    ErrorCode.EVENT_002: "매장 정보가 누락되었습니다",
    ErrorCode.EVENT_003: "현재 상태에서는 할 수 없는 요청입니다",
    ErrorCode.EVENT_004: "배포 준비가 되지 않았습니다",
    ErrorCode.EVENT_005: "이벤트를 찾을 수 없습니다",
    ErrorCode.EVENT_006: "시작일은 종료일보다 늦을 수 없습니다",
    ErrorCode.JOB_001: "Job을 찾을 수 없습니다",
    ErrorCode.BLOB_001: "이미지 링크가 유효하지 않거나 만료되었습니다",
    ErrorCode.BLOB_002: "이미지를 찾을 수 없습니다",
    ErrorCode.AUTH_001: "인증이 필요합니다",
    ErrorCode.VALIDATION_ERROR: "요청 형식이 올바르지 않습니다",
}


def error_message(code: ErrorCode) -> str:
    return _MESSAGES[code]
