"""Delivery of a published event to its channels, through one adapter for all six of them.

Seed 003's "adapter pattern: one Channel Adapter for every channel API". Two adapters:

- `LogAdapter`: the seed's Sprint 2 — no external call; each delivery is recorded in the
  `distribution_log` table and succeeds at once.
- `HttpAdapter`: the Distribution Service's synchronous call, `POST /api/distribution/distribute`
  `{eventId, channels, content}` to a Distribution Service, one channel per call, bounded by
  a timeout (70 s), retried, and guarded by a circuit breaker per channel.

`distribute()` delivers to every requested channel at once and reports each one, so one
channel's failure is a FAILED result (DistributionCompleted's ChannelResult), never an error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol

import httpx
from circuitbreaker import CircuitBreaker, CircuitBreakerError
from prometheus_client import Gauge
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ValidationError
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from eventpipe.settings import Settings
from streams.vocabulary import Channel, DeliveryStatus

__all__ = [
    "CIRCUIT_OPEN",
    "ChannelAdapter",
    "CircuitOpen",
    "Delivery",
    "DeliveryError",
    "HttpAdapter",
    "LogAdapter",
    "RequestRejected",
    "adapter_for",
    "distribute",
]

log = logging.getLogger(__name__)

CIRCUIT_OPEN = Gauge("eventpipe_channel_circuit_open",
                     "1 while a channel's circuit is open (its deliveries fail fast)", ["channel"])

DISTRIBUTE_PATH = "/api/distribution/distribute"
_INSERT_LOG = (
    "INSERT INTO distribution_log (event_id, channel, status, message, requested_at,"
    " delivered_at) VALUES (%s, %s, 'SUCCESS', NULL, %s, %s)"
    " ON CONFLICT (event_id, requested_at, channel) DO NOTHING"
)
_FAILED_STATUSES = frozenset({"FAILED", "FAILURE", "ERROR"})


@dataclass(frozen=True)
class Delivery:
    """One DistributionRequested (schemas/distribution-job-topic.avsc), fields as named there."""

    eventId: str
    userId: str
    title: str
    description: str | None
    imageUrl: str | None
    channels: tuple[str, ...]
    startDate: date | None
    endDate: date | None
    requestedAt: datetime

    @classmethod
    def from_request(cls, record: Mapping[str, Any]) -> Delivery:
        return cls(
            eventId=str(record["eventId"]), userId=str(record["userId"]),
            title=record["title"], description=record.get("description"),
            imageUrl=record.get("imageUrl"), channels=tuple(record["channels"]),
            startDate=record.get("startDate"), endDate=record.get("endDate"),
            requestedAt=record["requestedAt"],
        )

    def content(self) -> dict[str, str | None]:
        """The `content` of the Distribution Service's request body."""
        return {
            "title": self.title, "description": self.description, "imageUrl": self.imageUrl,
            "startDate": self.startDate.isoformat() if self.startDate else None,
            "endDate": self.endDate.isoformat() if self.endDate else None,
        }


class DeliveryError(Exception):
    """A channel's delivery failed; the text is the short reason reported for it."""


class RequestRejected(DeliveryError):
    """The service refused the request itself (4xx): repeating it cannot help."""


class CircuitOpen(DeliveryError):
    """The channel's circuit is open: it failed fast, without calling the service."""


class ChannelAdapter(Protocol):
    async def deliver(self, delivery: Delivery, channel: str) -> None:
        """Deliver to one channel; raise on failure."""

    async def close(self) -> None: ...


def _utc(moment: datetime) -> datetime:
    # TIMESTAMP columns hold UTC without a zone, as elsewhere in the schema.
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


class LogAdapter:
    """Sprint 2: record each delivery in `distribution_log` and succeed at once."""

    def __init__(self, settings: Settings) -> None:
        self._pool = AsyncConnectionPool(settings.database_url, min_size=1, max_size=len(Channel),
                                         open=False, check=AsyncConnectionPool.check_connection)

    async def open(self) -> None:
        await self._pool.open()  # a no-op once open

    async def deliver(self, delivery: Delivery, channel: str) -> None:
        await self.open()
        async with self._pool.connection() as conn:
            await conn.execute(_INSERT_LOG, (delivery.eventId, channel,
                                             _utc(delivery.requestedAt), _utc(datetime.now(UTC))))

    async def close(self) -> None:
        await self._pool.close()


class _ChannelResult(BaseModel):
    channel: str | None = None
    status: str | None = None
    success: bool | None = None
    message: str | None = None


class _DistributionResponse(BaseModel):
    """Seed 002's DistributionResponse {distributionId, channelResults}."""

    distributionId: str | None = None
    channelResults: list[_ChannelResult] = []


def _reported_failure(response: httpx.Response, channel: str) -> str | None:
    """Why the service says `channel` failed in a 2xx answer; None when it did not."""
    try:
        answer = _DistributionResponse.model_validate_json(response.content or b"{}")
    except ValidationError:
        return "unreadable answer from the distribution service"
    for result in answer.channelResults:
        if result.channel not in (None, channel):
            continue
        if result.success is False or (result.status or "").upper() in _FAILED_STATUSES:
            return result.message or "the service reported a failure"
    return None


class HttpAdapter:
    """Seed 002: call the Distribution Service, one channel per call.

    Each call is bounded by `distribution_timeout_seconds` and retried up to
    `distribution_attempts` times with exponential backoff. One delivery whose attempts are
    all spent is one failure for that channel's circuit breaker; at
    `breaker_failure_threshold` failures the circuit opens and the channel fails fast for
    `breaker_recovery_seconds`, after which one delivery is let through to probe it.
    """

    def __init__(self, settings: Settings, backoff_seconds: float = 0.5) -> None:
        if not settings.distribution_service_url:
            raise ValueError("DISTRIBUTION_ADAPTER=http needs DISTRIBUTION_SERVICE_URL")
        self._url = settings.distribution_service_url.rstrip("/") + DISTRIBUTE_PATH
        self._timeout = settings.distribution_timeout_seconds
        self._attempts = settings.distribution_attempts
        self._client = httpx.AsyncClient(timeout=self._timeout)
        post = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=backoff_seconds, max=backoff_seconds * 16),
            retry=retry_if_exception_type(DeliveryError)
            & retry_if_not_exception_type(RequestRejected),
            reraise=True,
        ).wraps(self._post)
        self._breakers = {
            channel.value: CircuitBreaker(
                failure_threshold=settings.breaker_failure_threshold,
                recovery_timeout=settings.breaker_recovery_seconds,
                # A refused request says the service is up: not the channel's failure.
                expected_exception=lambda _type, exc: not isinstance(exc, RequestRejected),
                name=f"distribution:{channel.value}")
            for channel in Channel
        }
        self._send = {channel: breaker.decorate(post)
                      for channel, breaker in self._breakers.items()}
        for channel, breaker in self._breakers.items():
            CIRCUIT_OPEN.labels(channel=channel).set_function(lambda b=breaker: float(b.opened))

    def breaker_states(self) -> dict[str, str]:
        """Each channel's circuit: closed, open or half_open."""
        return {channel: breaker.state for channel, breaker in self._breakers.items()}

    async def deliver(self, delivery: Delivery, channel: str) -> None:
        send = self._send.get(channel)
        if send is None:
            raise RequestRejected(f"unknown channel {channel}")
        try:
            await send(delivery, channel)
        except CircuitBreakerError as exc:
            remaining = self._breakers[channel].open_remaining
            raise CircuitOpen(f"circuit open for {channel}: not called, retry in {remaining} s") \
                from exc
        except RequestRejected:
            raise
        except DeliveryError as exc:
            raise DeliveryError(f"{exc} (after {self._attempts} attempts)") from exc

    async def _post(self, delivery: Delivery, channel: str) -> None:
        body = {"eventId": delivery.eventId, "channels": [channel], "content": delivery.content()}
        try:
            # httpx bounds each read and write; the seed's 70 s bounds the whole call.
            async with asyncio.timeout(self._timeout):
                response = await self._client.post(self._url, json=body)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise DeliveryError(f"no answer within {self._timeout:g} s") from exc
        except httpx.TransportError as exc:
            raise DeliveryError(f"distribution service unreachable ({exc!r})") from exc
        status = response.status_code
        if status in (408, 429) or response.is_server_error:
            raise DeliveryError(f"distribution service answered HTTP {status}")
        if not response.is_success:
            raise RequestRejected(f"distribution service refused the request: HTTP {status}")
        if failure := _reported_failure(response, channel):
            raise DeliveryError(f"{channel} failed: {failure}")

    async def close(self) -> None:
        await self._client.aclose()


async def _deliver_one(adapter: ChannelAdapter, delivery: Delivery,
                       channel: str) -> dict[str, str | None]:
    try:
        await adapter.deliver(delivery, channel)
    except DeliveryError as exc:
        log.warning("delivery of %s to %s failed: %s", delivery.eventId, channel, exc)
        return {"channel": channel, "status": DeliveryStatus.FAILED.value, "message": str(exc)}
    except Exception as exc:  # one channel's fault must not cost the others their result
        log.exception("delivery of %s to %s failed", delivery.eventId, channel)
        return {"channel": channel, "status": DeliveryStatus.FAILED.value,
                "message": f"{type(exc).__name__}: {exc}"[:300]}
    return {"channel": channel, "status": DeliveryStatus.SUCCESS.value, "message": None}


async def distribute(adapter: ChannelAdapter, delivery: Delivery) -> list[dict[str, str | None]]:
    """Deliver to every requested channel concurrently; one ChannelResult each, in order."""
    channels = list(dict.fromkeys(delivery.channels))  # a repeated channel is delivered once
    return list(await asyncio.gather(*(_deliver_one(adapter, delivery, c) for c in channels)))


def adapter_for(settings: Settings) -> ChannelAdapter:
    """DISTRIBUTION_ADAPTER: "log" (the default, Sprint 2) or "http"."""
    if settings.distribution_adapter == "http":
        return HttpAdapter(settings)
    return LogAdapter(settings)
