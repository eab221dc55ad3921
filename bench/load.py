"""Command load for the throughput benchmark: realistic lifecycles, preloaded into Kafka.

Most events live a whole lifecycle (purpose, AI job, image job, selections, dates, publish,
distribution, end: 13 commands over the four command topics); one in ten is a draft that is
edited and discarded (3 commands); one in twenty has its dates reversed: that edit is
rejected (EVENT_006), then its publish (EVENT_004) and its end (EVENT_003). Events are
interleaved in waves, one event's commands in order.

An event's commands span four topics, and nothing orders two topics against each other (the
API waits for each outcome before the next step). So the load comes in three phases, each
preloaded and consumed to its end before the next is produced: 1. the purpose topic (drafts,
edits, discards); 2. the recommendation and image topics (both jobs, results, selections);
3. the publish topic (publish, distribution result, end).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from confluent_kafka import Producer

from streams.codec import AvroCodec
from streams.envelope import command_record
from streams.topics import IMAGE, PUBLISH, PURPOSE, RECOMMENDATION, TopicSpec

__all__ = ["Planned", "lifecycle", "plan", "preload"]

STORE = {"objective": "SALES_GROWTH", "storeName": "해피카페", "industry": "카페",
         "address": "부산시 해운대구", "storeId": None}
TRENDS = {"industryTrends": ["디저트 세트"], "regionalTrends": ["관광객 증가"],
          "seasonalTrends": ["겨울 음료"]}
_NO_EDIT = {"eventName": None, "description": None, "startDate": None, "endDate": None,
            "channels": None}
WAVE = 500  # events interleaved at a time


@dataclass(frozen=True)
class Planned:
    spec: TopicSpec
    event_id: str
    user_id: str
    type: str
    payload: dict[str, Any]


def _recommendations() -> list[dict[str, Any]]:
    return [{"recommendationId": str(uuid.uuid4()), "title": f"{tier} 추천안", "prize": "쿠폰",
             "method": "SNS 공유", "cost": "50만원", "roi": "150%", "promotionType": "DISCOUNT",
             "targetAudience": "20-30대", "description": f"{tier} 이벤트"}
            for tier in ("저비용", "중비용", "고비용")]


def lifecycle(n: int) -> tuple[list[Planned], list[Planned], list[Planned]]:
    """The commands of the n-th event of a run, by phase, each in order."""
    event_id, user = str(uuid.uuid4()), str(uuid.uuid4())

    def c(spec: TopicSpec, kind: str, payload: dict[str, Any]) -> Planned:
        return Planned(spec, event_id, user, kind, payload)

    if n % 10 == 9:  # an abandoned draft
        return ([c(PURPOSE, "PurposeSelected", STORE),
                 c(PURPOSE, "DraftUpdated", {**_NO_EDIT, "eventName": "임시"}),
                 c(PURPOSE, "DraftDiscarded", {})], [], [])
    ai_job, image_job = str(uuid.uuid4()), str(uuid.uuid4())
    recs = _recommendations()
    images = [{"imageId": str(uuid.uuid4()), "imageUrl": f"http://img/{event_id}/{style}.png",
               "style": style, "platform": "INSTAGRAM"} for style in ("SIMPLE", "TRENDY")]
    dates = (date(2026, 12, 31), date(2026, 12, 1)) if n % 20 == 3 else (
        date(2026, 12, 1), date(2026, 12, 31))
    drafts = [
        c(PURPOSE, "PurposeSelected", STORE),
        c(PURPOSE, "DraftUpdated", {**_NO_EDIT, "startDate": dates[0], "endDate": dates[1],
                                    "channels": ["INSTAGRAM", "NAVER_BLOG"]}),
    ]
    jobs = [
        c(RECOMMENDATION, "RecommendationRequested", {"jobId": ai_job}),
        c(IMAGE, "ImageGenerationRequested",
          {"jobId": image_job, "styles": ["SIMPLE", "TRENDY"], "platforms": ["INSTAGRAM"]}),
        c(RECOMMENDATION, "RecommendationJobProgress", {"jobId": ai_job, "progress": 60}),
        c(IMAGE, "ImageJobProgress", {"jobId": image_job, "progress": 50}),
        c(RECOMMENDATION, "RecommendationsGenerated",
          {"jobId": ai_job, "trendAnalysis": TRENDS, "recommendations": recs}),
        c(IMAGE, "ImagesGenerated", {"jobId": image_job, "images": images}),
        c(RECOMMENDATION, "RecommendationSelected",
          {"recommendationId": recs[1]["recommendationId"], "eventName": None,
           "description": None}),
        c(IMAGE, "ImageSelected", {"imageId": images[0]["imageId"]}),
    ]
    publishing = [
        c(PUBLISH, "PublishRequested", {"channels": None}),
        c(PUBLISH, "DistributionCompleted", {"results": [
            {"channel": "INSTAGRAM", "status": "SUCCESS", "message": None},
            {"channel": "NAVER_BLOG", "status": "FAILED", "message": "timeout"}]}),
        c(PUBLISH, "EventEndRequested", {"reason": None}),
    ]
    if n % 20 == 3:  # not published, so no distribution worker reports on it
        publishing = [publishing[0], publishing[2]]
    return drafts, jobs, publishing


def _interleave(events: list[list[Planned]]) -> list[Planned]:
    out: list[Planned] = []
    for start in range(0, len(events), WAVE):
        wave = events[start:start + WAVE]
        for step in range(max((len(w) for w in wave), default=0)):
            out += [w[step] for w in wave if step < len(w)]
    return out


def plan(commands: int) -> list[list[Planned]]:
    """About `commands` commands (whole events) as three phases, events interleaved."""
    phases: tuple[list[list[Planned]], ...] = ([], [], [])
    total, n = 0, 0
    while total < commands:
        for phase, planned in zip(phases, lifecycle(n), strict=True):
            phase.append(planned)
            total += len(planned)
        n += 1
    return [_interleave(p) for p in phases]


def envelope(p: Planned, codecs: dict[str, AvroCodec]) -> bytes:
    return codecs[p.spec.name].encode(command_record(p.spec, p.type, p.event_id, p.user_id,
                                                     p.payload))


def preload(bootstrap: str, codecs: dict[str, AvroCodec], commands: list[Planned],
            progress: Any = None) -> dict[str, int]:
    """Produce the commands (murmur2, like the pipeline's producers); counts per topic.
    Idempotent, so a retried batch cannot land behind a later one: an event's commands
    stay in the order they were planned (on just-created topics the first batches are often
    retried, and a DraftUpdated once landed before its PurposeSelected)."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True,
                         "partitioner": "murmur2_random", "linger.ms": 20,
                         "batch.num.messages": 10000, "queue.buffering.max.messages": 200000})
    per_topic: dict[str, int] = {}
    for i, p in enumerate(commands):
        value = envelope(p, codecs)
        while True:
            try:
                producer.produce(p.spec.name, key=p.event_id.encode(), value=value)
                break
            except BufferError:  # the local queue is full: let it drain
                producer.poll(0.05)
        per_topic[p.spec.name] = per_topic.get(p.spec.name, 0) + 1
        if progress is not None and i % 5000 == 0:
            producer.poll(0)
            progress(i)
    producer.flush(120)
    return per_topic
