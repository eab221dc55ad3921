"""Event recommendations by explicit rules: objective, industry, region and season -> content.

Pure and deterministic: the same AiJobRequested record always gives the same trend analysis
and the same three recommendations (low, middle, high cost), ids included, so a replayed job
changes nothing downstream. The tables below are the spec; read them top to bottom:

1. TIERS: cost and expected ROI of each of the three recommendations, low to high.
2. OBJECTIVES: what the event wants -> theme, target audience, promotion type and method per tier.
3. INDUSTRIES: keywords found in the free-text industry -> prizes per tier and industry trends
   (first matching row wins; FALLBACK_INDUSTRY when none matches).
4. REGIONS: the metro area named by the address's first word -> regional trends
   (FALLBACK_REGION when none matches).
5. SEASONS: the month of requestedAt in Asia/Seoul -> seasonal trends and a seasonal hook.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from streams.vocabulary import Objective

__all__ = [
    "INDUSTRIES",
    "OBJECTIVES",
    "REGIONS",
    "SEASONS",
    "TIERS",
    "Tier",
    "industry_profile",
    "recommend",
    "recommendation_id",
    "region_profile",
    "season_of",
]

SEOUL = ZoneInfo("Asia/Seoul")
# Fixed namespace: recommendation ids are uuid5(namespace, "<jobId>:<tier>").
_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:eventpipe:ai-recommendation")


@dataclass(frozen=True)
class Tier:
    code: str
    label: str
    cost: str
    roi: str


TIERS: tuple[Tier, Tier, Tier] = (
    Tier("LOW", "저비용", "50만원", "150%"),
    Tier("MIDDLE", "중비용", "100만원", "200%"),
    Tier("HIGH", "고비용", "200만원", "300%"),
)

Triple = tuple[str, str, str]  # one value per tier: low, middle, high


@dataclass(frozen=True)
class ObjectivePlan:
    theme: str
    target_audience: str
    promotion_types: Triple
    methods: Triple


OBJECTIVES: dict[Objective, ObjectivePlan] = {
    Objective.NEW_CUSTOMERS: ObjectivePlan(
        "첫 방문 환영 이벤트", "매장 인근 신규 방문 고객",
        ("즉석 쿠폰", "SNS 바이럴", "경품 이벤트"),
        ("QR코드 스캔", "SNS 공유", "설문 참여")),
    Objective.REVISIT: ObjectivePlan(
        "다시 찾아주세요 이벤트", "최근 3개월 내 방문한 기존 고객",
        ("스탬프 적립", "재방문 쿠폰", "멤버십 혜택"),
        ("스탬프 10개 적립", "카카오 채널 친구 추가", "멤버십 가입")),
    Objective.SALES_GROWTH: ObjectivePlan(
        "매출 UP 이벤트", "객단가를 높일 수 있는 단골·가족 고객",
        ("금액별 할인", "묶음 판매", "구매 응모"),
        ("2만원 이상 구매", "세트 상품 구매", "구매 영수증 응모")),
    Objective.AWARENESS: ObjectivePlan(
        "우리 가게 알리기 이벤트", "지역 주민과 20-30대 SNS 이용자",
        ("리뷰 이벤트", "인증샷 이벤트", "친구 추천"),
        ("방문 리뷰 작성", "해시태그 인증샷 게시", "지인 추천 후 함께 방문")),
}


@dataclass(frozen=True)
class IndustryProfile:
    keywords: tuple[str, ...]
    prizes: Triple
    trends: tuple[str, ...]


INDUSTRIES: tuple[IndustryProfile, ...] = (
    IndustryProfile(
        ("카페", "커피", "베이커리", "제과", "빵", "디저트"),
        ("아메리카노 1잔 쿠폰", "디저트 세트 교환권", "원두 선물세트 추첨"),
        ("디저트·시즌 한정 음료가 방문 동기의 중심입니다",
         "테이크아웃과 모바일 선주문 비중이 늘고 있습니다")),
    IndustryProfile(
        ("음식점", "식당", "한식", "중식", "일식", "양식", "분식", "치킨", "피자", "고기", "주점"),
        ("커피쿠폰", "상품권", "경품 추첨"),  # the original design's example is a 음식점
        ("배달앱 리뷰와 지도 앱 평점이 첫 방문을 좌우합니다",
         "점심 세트와 1인 메뉴 수요가 꾸준히 늘고 있습니다")),
    IndustryProfile(
        ("미용", "헤어", "네일", "뷰티", "피부", "에스테틱"),
        ("트리트먼트 무료 쿠폰", "시술 20% 할인권", "프리미엄 케어 패키지 추첨"),
        ("인스타그램 시술 사진이 예약 결정에 큰 영향을 줍니다",
         "온라인 예약과 정기 관리 패키지 선호가 커지고 있습니다")),
    IndustryProfile(
        ("편의점", "마트", "슈퍼", "식자재"),
        ("음료 1+1 쿠폰", "모바일 상품권 1만원", "장보기 지원금 추첨"),
        ("1+1·2+1 행사 상품이 구매를 이끕니다",
         "소포장·간편식 수요가 1인 가구를 중심으로 늘고 있습니다")),
    IndustryProfile(
        ("헬스", "피트니스", "요가", "필라테스", "체육관"),
        ("1일 무료 이용권", "PT 1회 체험권", "3개월 회원권 추첨"),
        ("체험 수업 후 등록 전환이 핵심 지표입니다",
         "소그룹 수업과 기록 공유형 챌린지가 인기입니다")),
    IndustryProfile(
        ("학원", "교습", "교육", "공부방"),
        ("무료 체험 수업권", "교재 무료 제공", "한 달 수강료 지원 추첨"),
        ("학부모 커뮤니티의 추천이 등록을 좌우합니다",
         "소수 정예·맞춤형 수업 선호가 커지고 있습니다")),
)
FALLBACK_INDUSTRY = IndustryProfile(
    (),
    ("할인 쿠폰", "모바일 상품권", "경품 추첨"),
    ("온라인 리뷰와 지도 앱 노출이 동네 상권의 방문을 이끕니다",
     "간편결제·모바일 쿠폰 이용이 보편화되었습니다"))


@dataclass(frozen=True)
class RegionProfile:
    area: str
    keywords: tuple[str, ...]  # prefixes of the address's first word
    trend: str


REGIONS: tuple[RegionProfile, ...] = (
    RegionProfile("서울", ("서울",),
                  "직장인 점심·퇴근길 수요와 SNS 확산 속도가 빠른 상권입니다"),
    RegionProfile("부산", ("부산",),
                  "관광객과 지역 주민 수요가 함께 있는 상권입니다"),
    RegionProfile("대구", ("대구",),
                  "지역 커뮤니티와 입소문 영향이 큰 상권입니다"),
    RegionProfile("인천", ("인천",),
                  "신도시 가족 단위 고객과 공항·항만 유동 인구가 많습니다"),
    RegionProfile("광주", ("광주",),
                  "대학가와 주거지 중심의 재방문 고객이 많습니다"),
    RegionProfile("대전", ("대전",),
                  "연구단지·대학가 직장인과 학생 수요가 큽니다"),
    RegionProfile("울산", ("울산",),
                  "산업단지 근무자의 교대 시간대 수요가 뚜렷합니다"),
    RegionProfile("세종", ("세종",),
                  "공무원·젊은 가족 고객이 많고 주말 외식 수요가 큽니다"),
    RegionProfile("경기", ("경기",),
                  "주거 밀집 지역의 가족 단위 주말 방문이 많습니다"),
    RegionProfile("강원", ("강원",),
                  "관광 성수기와 비수기의 수요 차이가 큽니다"),
    RegionProfile("충청", ("충청", "충북", "충남"),
                  "지역 생활권 단골 비중이 높습니다"),
    RegionProfile("전라", ("전라", "전북", "전남"),
                  "지역 축제·특산물과 연계한 홍보 효과가 큽니다"),
    RegionProfile("경상", ("경상", "경북", "경남"),
                  "지역 커뮤니티 중심의 입소문 효과가 큽니다"),
    RegionProfile("제주", ("제주",),
                  "관광객 비중이 높아 SNS 인증과 리뷰 효과가 큽니다"),
)
FALLBACK_REGION = RegionProfile("지역 상권", (),
                                "동네 생활권 고객의 재방문이 매출의 중심입니다")


@dataclass(frozen=True)
class SeasonProfile:
    name: str
    months: frozenset[int]
    hook: str
    trends: tuple[str, ...]


SEASONS: tuple[SeasonProfile, ...] = (
    SeasonProfile("봄", frozenset({3, 4, 5}), "봄맞이·신학기 시즌",
                  ("신학기·나들이 수요로 유동 인구가 늘어납니다",
                   "가정의 달(5월) 선물·가족 외식 수요가 큽니다")),
    SeasonProfile("여름", frozenset({6, 7, 8}), "여름 휴가 시즌",
                  ("시원한 메뉴·실내 활동 수요가 늘어납니다",
                   "휴가철 이동으로 주중·주말 수요가 달라집니다")),
    SeasonProfile("가을", frozenset({9, 10, 11}), "가을 추석·단풍 시즌",
                  ("추석 선물과 단풍 나들이 수요가 큽니다",
                   "연말 전 소비 심리가 살아나는 시기입니다")),
    SeasonProfile("겨울", frozenset({12, 1, 2}), "연말연시 시즌",
                  ("연말 모임·선물 수요가 가장 큰 시기입니다",
                   "새해 목표(운동·공부)와 설 명절 수요가 이어집니다")),
)


def recommendation_id(job_id: str | uuid.UUID, tier: Tier) -> str:
    """Same job and tier -> same id, whoever wrote the content (rules or a model).

    fastavro decodes the uuid logical type to `uuid.UUID`; both forms give the same id.
    """
    return str(uuid.uuid5(_ID_NAMESPACE, f"{job_id}:{tier.code}"))


def industry_profile(industry: str) -> IndustryProfile:
    text = industry.strip()
    for profile in INDUSTRIES:
        if any(keyword in text for keyword in profile.keywords):
            return profile
    return FALLBACK_INDUSTRY


def region_profile(address: str) -> RegionProfile:
    words = address.split()
    first = words[0] if words else ""
    for profile in REGIONS:
        if first.startswith(profile.keywords):
            return profile
    return FALLBACK_REGION


def season_of(requested_at: datetime) -> SeasonProfile:
    """The season of the request's month in Korea (a naive time is taken as UTC)."""
    if requested_at.tzinfo is None:
        requested_at = requested_at.replace(tzinfo=UTC)
    month = requested_at.astimezone(SEOUL).month
    return next(season for season in SEASONS if month in season.months)


def _district(address: str) -> str | None:
    """The 시/군/구 of the address (its second word), to name the local trade area."""
    words = address.split()
    return words[1] if len(words) > 1 and words[1].endswith(("시", "군", "구")) else None


def _regional_trends(address: str) -> list[str]:
    profile = region_profile(address)
    district = _district(address)
    local = (f"{district} 생활권" if district else "매장 반경 1km 생활권") + \
        " 고객이 방문의 대부분을 차지하므로 근거리 홍보가 효과적입니다"
    return [f"{profile.area}: {profile.trend}", local]


def recommend(job: Mapping[str, Any]) -> dict[str, Any]:
    """The RecommendationsGenerated payload (without jobId) for an AiJobRequested record."""
    plan = OBJECTIVES[Objective(job["objective"])]
    industry = industry_profile(job["industry"])
    season = season_of(job["requestedAt"])
    store = job["storeName"].strip()
    recommendations = []
    for i, tier in enumerate(TIERS):
        method, prize, promotion = plan.methods[i], industry.prizes[i], plan.promotion_types[i]
        recommendations.append({
            "recommendationId": recommendation_id(job["jobId"], tier),
            "title": f"{tier.label} 추천안: {plan.theme}",
            "prize": prize,
            "method": method,
            "cost": tier.cost,
            "roi": tier.roi,
            "promotionType": promotion,
            "targetAudience": plan.target_audience,
            "description": (
                f"{store} {plan.theme} - {method} 참여 고객에게 {prize} 증정. "
                f"{season.hook}에 맞춘 {promotion} 프로모션으로, "
                f"예상 비용 {tier.cost} 대비 ROI {tier.roi}를 목표로 합니다."),
        })
    return {
        "trendAnalysis": {
            "industryTrends": list(industry.trends),
            "regionalTrends": _regional_trends(job["region"]),
            "seasonalTrends": [f"{season.name}: {trend}" for trend in season.trends],
        },
        "recommendations": recommendations,
    }
