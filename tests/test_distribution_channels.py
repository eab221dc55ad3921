"""Channel adapters of the distribution worker: the log table on the stack's PostgreSQL, and
the HTTP adapter against a real local server standing in for the Distribution Service."""

from __future__ import annotations

import asyncio
import io
import socket
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import fastavro
import psycopg
import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from eventpipe.settings import Settings
from sinks.migrate import migrate
from streams.vocabulary import Channel
from workers.channels import (
    Delivery,
    HttpAdapter,
    LogAdapter,
    adapter_for,
    distribute,
)

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
ALL_CHANNELS = [c.value for c in Channel]


def _delivery(channels: list[str]) -> Delivery:
    return Delivery(
        eventId=str(uuid.uuid4()), userId=str(uuid.uuid4()), title="봄맞이 할인",
        description="전 메뉴 10%", imageUrl="http://127.0.0.1/img.png", channels=tuple(channels),
        startDate=date(2026, 12, 1), endDate=date(2026, 12, 31),
        requestedAt=datetime.now(UTC).replace(microsecond=0),
    )


class DistributionServiceStub:
    """POST /api/distribution/distribute, answering per channel as a test sets it."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.bodies: list[dict[str, Any]] = []
        self.status: dict[str, int] = {}  # channel -> HTTP status other than 200
        self.reported_failure: dict[str, str] = {}  # channel -> message in a 200 answer
        self.delay: dict[str, float] = {}  # channel -> seconds before answering
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.bodies.append(body)
        (channel,) = body["channels"]
        self.requests[channel] += 1
        await asyncio.sleep(self.delay.get(channel, 0))
        if channel in self.status:
            return web.json_response({"error": "boom"}, status=self.status[channel])
        failure = self.reported_failure.get(channel)
        result = ({"channel": channel, "status": "FAILED", "message": failure} if failure
                  else {"channel": channel, "status": "SUCCESS"})
        return web.json_response({"distributionId": str(uuid.uuid4()),
                                  "channelResults": [result]})


@pytest.fixture
async def service() -> AsyncIterator[DistributionServiceStub]:
    stub = DistributionServiceStub()
    app = web.Application()
    app.router.add_post("/api/distribution/distribute", stub.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    stub.url = f"http://{host}:{port}"
    yield stub
    await runner.cleanup()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http_settings(settings: Settings, url: str, **overrides: Any) -> Settings:
    values = {"distribution_adapter": "http", "distribution_service_url": url,
              "distribution_timeout_seconds": 5.0, "distribution_attempts": 3,
              "breaker_failure_threshold": 2, "breaker_recovery_seconds": 1.0, **overrides}
    return settings.model_copy(update=values)


@pytest.fixture
async def http_adapter(settings: Settings,
                       service: DistributionServiceStub) -> AsyncIterator[HttpAdapter]:
    adapter = HttpAdapter(_http_settings(settings, service.url), backoff_seconds=0.01)
    yield adapter
    await adapter.close()


def _by_channel(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["channel"]: r for r in results}


def _circuit_gauge(channel: str) -> float | None:
    return REGISTRY.get_sample_value("eventpipe_channel_circuit_open", {"channel": channel})


# --- the request record -------------------------------------------------------------------

def test_delivery_from_a_decoded_distribution_request() -> None:
    schema = fastavro.schema.load_schema(SCHEMAS / "distribution-job-topic.avsc")
    requested = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
    record = {"eventId": str(uuid.uuid4()), "userId": str(uuid.uuid4()), "title": "오픈 이벤트",
              "description": None, "imageUrl": "http://x/i.png",
              "channels": ["INSTAGRAM", "NAVER_BLOG"], "startDate": date(2026, 12, 1),
              "endDate": None, "requestedAt": requested}
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, record)
    buf.seek(0)
    delivery = Delivery.from_request(fastavro.schemaless_reader(buf, schema, schema))
    assert delivery.eventId == record["eventId"]
    assert delivery.channels == ("INSTAGRAM", "NAVER_BLOG")
    assert delivery.requestedAt == requested
    assert delivery.content() == {"title": "오픈 이벤트", "description": None,
                                  "imageUrl": "http://x/i.png", "startDate": "2026-12-01",
                                  "endDate": None}


def test_adapter_is_chosen_by_settings(settings: Settings) -> None:
    assert isinstance(adapter_for(settings.model_copy(update={"distribution_adapter": "log"})),
                      LogAdapter)
    adapter = adapter_for(_http_settings(settings, "http://127.0.0.1:9"))
    assert isinstance(adapter, HttpAdapter)
    with pytest.raises(ValueError, match="DISTRIBUTION_SERVICE_URL"):
        HttpAdapter(_http_settings(settings, ""))


# --- the log adapter (Sprint 2) -----------------------------------------------------------

@pytest.fixture
def logged_events(pg: psycopg.Connection, settings: Settings) -> Iterator[list[str]]:
    """The events a test delivers through the log; their rows are removed afterwards."""
    migrate(settings.database_url)
    created: list[str] = []
    yield created
    pg.execute("DELETE FROM distribution_log WHERE event_id = ANY(%s::uuid[])", (created,))


async def test_log_adapter_records_each_channel_once(
        logged_events: list[str], pg: psycopg.Connection, settings: Settings) -> None:
    delivery = _delivery(["URIDONGNE_TV", "GENIE_TV", "KAKAO_CHANNEL"])
    logged_events.append(delivery.eventId)
    adapter = LogAdapter(settings)
    try:
        results = await distribute(adapter, delivery)
        replayed = await distribute(adapter, delivery)  # the same request again
    finally:
        await adapter.close()

    expected = [{"channel": c, "status": "SUCCESS", "message": None} for c in delivery.channels]
    assert results == expected
    assert replayed == expected
    rows = pg.execute(
        "SELECT channel, status, requested_at, delivered_at FROM distribution_log"
        " WHERE event_id = %s ORDER BY channel", (delivery.eventId,)).fetchall()
    assert [(r[0], r[1]) for r in rows] == [("GENIE_TV", "SUCCESS"), ("KAKAO_CHANNEL", "SUCCESS"),
                                            ("URIDONGNE_TV", "SUCCESS")]
    assert {r[2] for r in rows} == {delivery.requestedAt.replace(tzinfo=None)}
    assert all(r[3] is not None for r in rows)


async def test_log_adapter_records_a_new_request_of_the_same_event(
        logged_events: list[str], pg: psycopg.Connection, settings: Settings) -> None:
    first = _delivery(["INSTAGRAM"])
    logged_events.append(first.eventId)
    again = replace(first, requestedAt=datetime(2027, 1, 1, tzinfo=UTC))
    adapter = LogAdapter(settings)
    try:
        await distribute(adapter, first)
        await distribute(adapter, again)
    finally:
        await adapter.close()
    count = pg.execute("SELECT count(*) FROM distribution_log WHERE event_id = %s",
                       (first.eventId,)).fetchone()
    assert count == (2,)


# --- the HTTP adapter ----------------------------------------------------------------------

async def test_http_all_channels_succeed(http_adapter: HttpAdapter,
                                         service: DistributionServiceStub) -> None:
    delivery = _delivery(ALL_CHANNELS)
    results = await distribute(http_adapter, delivery)
    assert results == [{"channel": c, "status": "SUCCESS", "message": None} for c in ALL_CHANNELS]
    assert service.requests == Counter(ALL_CHANNELS)
    body = next(b for b in service.bodies if b["channels"] == ["NAVER_BLOG"])
    assert body == {"eventId": delivery.eventId, "channels": ["NAVER_BLOG"],
                    "content": delivery.content()}


async def test_http_failing_channel_is_retried_and_reported_alone(
        http_adapter: HttpAdapter, service: DistributionServiceStub) -> None:
    service.status["INSTAGRAM"] = 500
    results = _by_channel(await distribute(http_adapter, _delivery(ALL_CHANNELS)))
    assert results["INSTAGRAM"]["status"] == "FAILED"
    assert "HTTP 500" in results["INSTAGRAM"]["message"]
    assert service.requests["INSTAGRAM"] == 3  # distribution_attempts
    others = [c for c in ALL_CHANNELS if c != "INSTAGRAM"]
    assert [results[c]["status"] for c in others] == ["SUCCESS"] * len(others)
    assert all(service.requests[c] == 1 for c in others)


async def test_http_failure_reported_in_the_answer_body(
        http_adapter: HttpAdapter, service: DistributionServiceStub) -> None:
    service.reported_failure["KAKAO_CHANNEL"] = "channel token expired"
    results = _by_channel(await distribute(http_adapter, _delivery(["KAKAO_CHANNEL", "GENIE_TV"])))
    assert results["KAKAO_CHANNEL"]["status"] == "FAILED"
    assert "channel token expired" in results["KAKAO_CHANNEL"]["message"]
    assert results["GENIE_TV"]["status"] == "SUCCESS"


async def test_http_refused_request_is_not_retried_nor_opens_the_circuit(
        http_adapter: HttpAdapter, service: DistributionServiceStub) -> None:
    service.status["RINGO_BIZ"] = 400
    for _ in range(3):  # more than breaker_failure_threshold
        (result,) = await distribute(http_adapter, _delivery(["RINGO_BIZ"]))
        assert result["status"] == "FAILED"
        assert "HTTP 400" in result["message"]
    assert service.requests["RINGO_BIZ"] == 3  # once per delivery
    assert http_adapter.breaker_states()["RINGO_BIZ"] == "closed"


async def test_http_circuit_opens_fails_fast_and_recovers(
        http_adapter: HttpAdapter, service: DistributionServiceStub) -> None:
    channels = ["INSTAGRAM", "NAVER_BLOG"]
    service.status["INSTAGRAM"] = 503
    for _ in range(2):  # breaker_failure_threshold failed deliveries
        results = _by_channel(await distribute(http_adapter, _delivery(channels)))
        assert results["INSTAGRAM"]["status"] == "FAILED"
        assert "HTTP 503" in results["INSTAGRAM"]["message"]
    assert http_adapter.breaker_states()["INSTAGRAM"] == "open"
    assert http_adapter.breaker_states()["NAVER_BLOG"] == "closed"
    assert _circuit_gauge("INSTAGRAM") == 1.0
    assert _circuit_gauge("NAVER_BLOG") == 0.0

    # Open: the service is not called for INSTAGRAM, even though it has recovered meanwhile.
    del service.status["INSTAGRAM"]
    service.requests.clear()
    results = _by_channel(await distribute(http_adapter, _delivery(channels)))
    assert results["INSTAGRAM"]["status"] == "FAILED"
    assert "circuit open" in results["INSTAGRAM"]["message"]
    assert results["NAVER_BLOG"]["status"] == "SUCCESS"
    assert service.requests == Counter({"NAVER_BLOG": 1})

    # Deliveries go on failing fast, with no call, until the breaker lets one probe the
    # channel; the probe's success closes it. Counted in calls, not timed.
    fast_failures = 1
    for _ in range(10_000):
        if http_adapter.breaker_states()["INSTAGRAM"] == "half_open":
            break
        results = _by_channel(await distribute(http_adapter, _delivery(channels)))
        if results["INSTAGRAM"]["status"] == "SUCCESS":
            break  # it turned half-open between the look and the delivery: the probe
        assert "circuit open" in results["INSTAGRAM"]["message"]
        assert service.requests["INSTAGRAM"] == 0
        fast_failures += 1
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the breaker never let a delivery probe the channel")
    if service.requests["INSTAGRAM"] == 0:
        results = _by_channel(await distribute(http_adapter, _delivery(channels)))
    assert results["INSTAGRAM"] == {"channel": "INSTAGRAM", "status": "SUCCESS", "message": None}
    assert service.requests["INSTAGRAM"] == 1  # the probe, the only call since it opened
    assert fast_failures >= 1
    assert http_adapter.breaker_states()["INSTAGRAM"] == "closed"
    assert _circuit_gauge("INSTAGRAM") == 0.0


async def test_http_slow_channel_times_out(settings: Settings,
                                           service: DistributionServiceStub) -> None:
    service.delay["INSTAGRAM"] = 3.0
    adapter = HttpAdapter(_http_settings(settings, service.url, distribution_timeout_seconds=0.5,
                                         distribution_attempts=2), backoff_seconds=0.01)
    try:
        results = _by_channel(await distribute(adapter, _delivery(["INSTAGRAM", "GENIE_TV"])))
    finally:
        await adapter.close()
    # Two attempts, each given up on at its timeout (not the server's late answer).
    assert results["INSTAGRAM"]["status"] == "FAILED"
    assert "no answer within 0.5 s" in results["INSTAGRAM"]["message"]
    assert results["GENIE_TV"]["status"] == "SUCCESS"
    assert service.requests["INSTAGRAM"] == 2


async def test_http_unreachable_service_fails_every_channel(settings: Settings) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    adapter = HttpAdapter(_http_settings(settings, url), backoff_seconds=0.01)
    try:
        results = await distribute(adapter, _delivery(["GENIE_TV", "RINGO_BIZ"]))
    finally:
        await adapter.close()
    assert [r["status"] for r in results] == ["FAILED", "FAILED"]
    assert all("unreachable" in r["message"] for r in results)
