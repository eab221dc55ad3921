"""The API's clients, opened once per process and handed to routes as dependencies."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

from aiokafka import AIOKafkaProducer
from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from api.commands import CommandBus, OutcomeWaiter
from api.queries import EventQueries
from eventpipe.settings import Settings
from streams.codec import AvroCodec
from streams.registry import register_all, registry_client
from streams.topics import ALL_TOPICS

__all__ = ["Services", "ServicesDep"]


@dataclass
class Services:
    settings: Settings
    producer: AIOKafkaProducer
    redis: Redis
    pool: AsyncConnectionPool
    waiter: OutcomeWaiter
    commands: CommandBus
    queries: EventQueries

    @classmethod
    async def open(cls, settings: Settings) -> Services:
        ids = await asyncio.to_thread(register_all, settings.schema_registry_url,
                                      settings.schema_compatibility)
        client = registry_client(settings.schema_registry_url)
        codecs = {s.name: AvroCodec(s, client, ids[s.subject]) for s in ALL_TOPICS}
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            linger_ms=1,
        )
        await producer.start()
        redis = Redis.from_url(settings.redis_url, decode_responses=True,
                               socket_timeout=1.0, socket_connect_timeout=1.0)
        # check: a connection broken by a PostgreSQL restart is replaced, not handed out.
        pool = AsyncConnectionPool(settings.database_url, min_size=1, max_size=8, open=False,
                                   check=AsyncConnectionPool.check_connection)
        await pool.open(wait=False)
        waiter = OutcomeWaiter(redis, pool)
        await waiter.start()
        return cls(settings, producer, redis, pool, waiter,
                   CommandBus(producer, codecs, waiter), EventQueries(redis, pool))

    async def close(self) -> None:
        await self.waiter.stop()
        await self.producer.stop()
        await self.pool.close()
        await self.redis.aclose()


def _services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(_services)]
