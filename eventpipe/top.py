"""`eventpipe top`: what the running pipeline is doing, sampled once a second.

One `Sample` gathers, each on its own and each allowed to fail (a part that does not answer
is None, shown as "down"):

- the worker's and the API's `/metrics` (Prometheus text, parsed by `prometheus_client`);
- the API's `/health/ready`;
- the broker: each consumer group's committed offsets against the partitions' end offsets
  (aiokafka's admin client and a group-less consumer), for the worker's group (the command
  topics) and the projector's (the changelog and the outcomes);
- PostgreSQL (jobs by type and status), Redis and the registry, probed directly.

Rates and the API's p99 come from two samples (`Figures`); `eventpipe.top_view` draws them.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families

from eventpipe.settings import Settings
from streams.topics import COMMAND_TOPICS, OUTCOME, changelog_topic

__all__ = ["Figures", "Metrics", "PartitionLag", "Probe", "Sample"]

PROBE_SECONDS = 2.0  # each probe's own bound: a frame never waits on one that is down
JOBS_BY_STATUS = "SELECT job_type, status, count(*) FROM jobs GROUP BY job_type, status"


class Metrics:
    """One scrape: every sample of a Prometheus text page, by sample name."""

    def __init__(self, text: str) -> None:
        self.samples: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                self.samples[s.name].append((s.labels, s.value))

    def by(self, name: str, label: str) -> dict[str, float]:
        """The sample `name` summed per value of `label`."""
        out: dict[str, float] = defaultdict(float)
        for labels, value in self.samples.get(name, ()):
            out[labels.get(label, "")] += value
        return dict(out)

    def series(self, name: str, *labels: str) -> dict[tuple[str, ...], float]:
        out: dict[tuple[str, ...], float] = defaultdict(float)
        for found, value in self.samples.get(name, ()):
            out[tuple(found.get(label, "") for label in labels)] += value
        return dict(out)


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None  # None: the group never committed this partition
    end: int

    @property
    def lag(self) -> int:
        return self.end - (self.committed or 0)


@dataclass
class Sample:
    at: float
    worker: Metrics | None = None
    api: Metrics | None = None
    ready: dict[str, Any] | None = None  # the API's /health/ready body
    services: dict[str, bool] = field(default_factory=dict)
    lag: dict[str, list[PartitionLag]] | None = None  # group -> partitions; None: broker down
    jobs: dict[tuple[str, str], int] | None = None  # (job type, status) -> count


def _delta(now: float, before: float | None) -> float:
    # A restarted process starts its counters again from zero.
    return now if before is None or now < before else now - before


@dataclass
class Figures:
    """What two successive samples say: rates per second and the API's recent p99."""

    now: Sample
    before: Sample | None

    @property
    def seconds(self) -> float:
        return max(1e-3, self.now.at - self.before.at) if self.before else 0.0

    def rates(self, part: str, name: str, label: str) -> dict[str, float]:
        """Per second over the last interval (0 until there are two samples)."""
        now = getattr(self.now, part)
        before = getattr(self.before, part) if self.before else None
        if now is None:
            return {}
        values = now.by(name, label)
        if before is None:
            return dict.fromkeys(values, 0.0)
        old = before.by(name, label)
        return {k: _delta(v, old.get(k)) / self.seconds for k, v in values.items()}

    def p99(self) -> dict[tuple[str, str], float | None]:
        """Per (method, route): the 99th percentile in seconds over the last interval, or
        over the process's life on the first frame (Prometheus' histogram_quantile)."""
        if self.now.api is None:
            return {}
        name = "eventpipe_api_request_seconds_bucket"
        buckets = self.now.api.series(name, "method", "route", "le")
        old = (self.before.api.series(name, "method", "route", "le")
               if self.before and self.before.api else {})
        recent = {k: _delta(v, old.get(k)) for k, v in buckets.items()} if old else buckets
        per_route: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
        for (method, route, le), count in recent.items():
            per_route[(method, route)].append((float(le), count))
        return {route: _quantile(0.99, sorted(b)) for route, b in per_route.items()}


def _quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Linear interpolation inside the bucket holding the q-th observation (cumulative)."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # beyond the last finite bucket: its bound is all we know
            inside = count - lower_count
            return lower_bound + (bound - lower_bound) * ((rank - lower_count) / inside
                                                          if inside else 1.0)
        lower_bound, lower_count = bound, count
    return lower_bound


class Probe:
    """Holds the clients from frame to frame; `sample()` never raises."""

    def __init__(self, settings: Settings, worker_url: str, api_url: str) -> None:
        self.settings = settings
        self.worker_url = worker_url.rstrip("/")
        self.api_url = api_url.rstrip("/")
        self.groups = {
            settings.app_id: [t.name for t in COMMAND_TOPICS],
            f"{settings.app_id}-projector": [changelog_topic(settings.app_id, "events"),
                                             OUTCOME.name],
        }
        self.http = httpx.AsyncClient(timeout=PROBE_SECONDS)
        self.redis = aioredis.Redis.from_url(settings.redis_url,
                                             socket_timeout=PROBE_SECONDS,
                                             socket_connect_timeout=PROBE_SECONDS)
        self._kafka: tuple[AIOKafkaAdminClient, AIOKafkaConsumer] | None = None

    async def close(self) -> None:
        await self._drop_kafka()
        await self.http.aclose()
        await self.redis.aclose()

    async def sample(self) -> Sample:
        sample = Sample(at=time.monotonic())
        worker, api, ready, lag, jobs, rds, registry = await asyncio.gather(
            self._metrics(self.worker_url), self._metrics(self.api_url), self._ready(),
            self._lag(), self._jobs(), self._redis(), self._registry())
        sample.worker, sample.api, sample.ready, sample.lag, sample.jobs = (
            worker, api, ready, lag, jobs)
        sample.services = {"broker": lag is not None, "registry": registry,
                           "postgres": jobs is not None, "redis": rds}
        return sample

    async def _metrics(self, base: str) -> Metrics | None:
        try:
            response = await self.http.get(f"{base}/metrics")
            response.raise_for_status()
            return Metrics(response.text)
        except (httpx.HTTPError, ValueError):
            return None

    async def _ready(self) -> dict[str, Any] | None:
        try:
            # 503 is an answer too: it names what is down.
            return (await self.http.get(f"{self.api_url}/health/ready")).json()
        except (httpx.HTTPError, ValueError):
            return None

    async def _registry(self) -> bool:
        try:
            url = f"{self.settings.schema_registry_url}/subjects"
            return (await self.http.get(url)).status_code == 200
        except httpx.HTTPError:
            return False

    async def _redis(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except (aioredis.RedisError, OSError):
            return False

    async def _jobs(self) -> dict[tuple[str, str], int] | None:
        try:
            async with await psycopg.AsyncConnection.connect(
                    self.settings.database_url, connect_timeout=int(PROBE_SECONDS),
                    autocommit=True) as conn:
                rows = await (await conn.execute(JOBS_BY_STATUS)).fetchall()
            return {(job_type, status): count for job_type, status, count in rows}
        except (psycopg.Error, OSError):
            return None

    async def _lag(self) -> dict[str, list[PartitionLag]] | None:
        try:
            return await asyncio.wait_for(self._read_lag(), 2 * PROBE_SECONDS)
        except Exception:  # any broker failure is "down"; the clients are made again
            await self._drop_kafka()
            return None

    async def _read_lag(self) -> dict[str, list[PartitionLag]]:
        admin, consumer = await self._kafka_clients()
        wanted = {t for topics in self.groups.values() for t in topics}
        # All topics' metadata, not the wanted ones by name: naming a topic lets the broker
        # auto-create it, and `top` run before the worker must not make its changelog.
        described = await admin.describe_topics()
        tps = sorted((TopicPartition(t["topic"], p["partition"]) for t in described
                      if t["error_code"] == 0 and t["topic"] in wanted
                      for p in t["partitions"]),
                     key=lambda tp: (tp.topic, tp.partition))
        ends = await consumer.end_offsets(tps)
        out: dict[str, list[PartitionLag]] = {}
        for group, topics in self.groups.items():
            committed = await admin.list_consumer_group_offsets(group)
            out[group] = [
                PartitionLag(tp.topic, tp.partition,
                             committed[tp].offset if tp in committed
                             and committed[tp].offset >= 0 else None, ends[tp])
                for tp in tps if tp.topic in topics]
        return out

    async def _kafka_clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._kafka is None:
            servers = self.settings.kafka_bootstrap_servers
            timeout_ms = int(PROBE_SECONDS * 1000)
            admin = AIOKafkaAdminClient(bootstrap_servers=servers, request_timeout_ms=timeout_ms)
            consumer = AIOKafkaConsumer(bootstrap_servers=servers, group_id=None,
                                        enable_auto_commit=False,
                                        request_timeout_ms=timeout_ms)
            self._kafka = (admin, consumer)
            await admin.start()
            await consumer.start()
        return self._kafka

    async def _drop_kafka(self) -> None:
        if self._kafka is not None:
            admin, consumer = self._kafka
            self._kafka = None
            for client in (consumer, admin):
                with contextlib.suppress(Exception):
                    await client.close() if client is admin else await client.stop()
