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
from api.pipeline import PipelineCheck
from api.queries import EventQueries
from api.redis_reader import RedisReader
from eventpipe.settings import Settings
from streams.codec import register_codecs

__all__ = ["Services", "ServicesDep"]


@dataclass
class Services:
    settings: Settings
    producer: AIOKafkaProducer
    redis: Redis
    reader: RedisReader | Redis  # the hot reads' (api/redis_reader.py)
    pool: AsyncConnectionPool
    waiter: OutcomeWaiter
    commands: CommandBus
    queries: EventQueries
    pipeline: PipelineCheck

    @classmethod
    async def open(cls, settings: Settings) -> Services:
        codecs = await asyncio.to_thread(register_codecs, settings.schema_registry_url,
                                         settings.schema_compatibility)
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            acks="all",
            # Not idempotent: once a batch expires while the broker is away, aiokafka's
            # idempotent producer fails every later send (OutOfOrderSequenceNumber) for
            # good. A retry's duplicate is harmless: the pipeline dedupes by commandId
            # (docs/decisions/0010).
            enable_idempotence=False,
            linger_ms=1,
            # While the broker is away a request waits this long (the producer retrying),
            # then answers 503 with Retry-After (CommandBus keeps the deadline); a message
            # already in flight may still land, so a refused command is stored at most once.
            request_timeout_ms=int(settings.api_produce_timeout_seconds * 1000),
        )
        await producer.start()
        # A reply later than the timeout counts as Redis down; a late one within it is
        # waited for (under load, a short timeout turned a busy loop into "Redis down" and
        # every read into a PostgreSQL query: bench/ANALYSIS.md).
        timeouts = {"socket_timeout": settings.api_redis_timeout_seconds,
                    "socket_connect_timeout": 1.0}
        redis = Redis.from_url(settings.redis_url, decode_responses=True, **timeouts)
        reader = (RedisReader(settings.redis_url, timeouts["socket_timeout"],
                              timeouts["socket_connect_timeout"])
                  if RedisReader.supports(settings.redis_url)
                  else Redis.from_url(settings.redis_url, decode_responses=False, **timeouts))
        # check: a connection broken by a PostgreSQL restart is replaced, not handed out.
        # A request waits this long for a PostgreSQL connection, then answers 503 (the pool's
        # default, 30 s, outlasts any client's patience).
        pool = AsyncConnectionPool(settings.database_url, min_size=1, max_size=8, open=False,
                                   check=AsyncConnectionPool.check_connection,
                                   timeout=settings.api_store_timeout_seconds)
        await pool.open(wait=False)
        waiter = OutcomeWaiter(redis, pool)
        await waiter.start()
        commands = CommandBus(producer, codecs, waiter, settings.api_produce_timeout_seconds)
        queries = EventQueries(reader, pool, waiter.next_batch)
        return cls(settings, producer, redis, reader, pool, waiter, commands, queries,
                   PipelineCheck(settings))

    async def close(self) -> None:
        await self.pipeline.close()
        await self.waiter.stop()
        await self.producer.stop()
        await self.pool.close()
        await self.redis.aclose()
        await self.reader.aclose()


async def _services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(_services)]
