"""The hot reads' Redis client: one connection, commands pipelined on it, replies parsed by
hiredis (the C parser redis-py uses too).

redis-py costs 60-85 us of CPU per HMGET on this machine, about 240 Python calls a command
through its pool, retry, event and observability layers; this costs 26-31 us, most of it
the socket write (bench/ANALYSIS.md, 2026-12-02). It sends reads only and keeps no state
but the connection, so there is nothing to get wrong between commands: replies come back
in the order the commands went out, and a reply whose caller stopped waiting (the timeout)
is dropped when it comes. Every other Redis use stays on redis-py.

A refused, broken or lost connection raises ConnectionError, no reply within the timeout
TimeoutError (both OSError), an error reply redis-py's ResponseError: the callers' existing
"Redis down" handling. The next command connects again.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, cast

import hiredis
from redis.asyncio.connection import parse_url
from redis.exceptions import ResponseError

__all__ = ["RedisReader"]


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = hiredis.Reader(replyError=ResponseError)
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.transport: asyncio.Transport | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.parser.feed(data)
        try:
            while (reply := self.parser.gets()) is not False:
                waiter = self.waiting.popleft()
                if waiter.done():  # its caller timed out
                    continue
                if isinstance(reply, ResponseError):
                    waiter.set_exception(reply)
                else:
                    waiter.set_result(reply)
        except hiredis.ProtocolError:
            assert self.transport is not None
            self.transport.abort()  # connection_lost fails whoever waits

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        error = ConnectionError(f"Redis connection lost: {exc or 'closed'}")
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_exception(error)

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        assert self.transport is not None
        waiter = asyncio.get_running_loop().create_future()
        self.waiting.append(waiter)
        self.transport.write(packed)
        return waiter


class RedisReader:
    """`await reader.execute_command("HMGET", key, *fields)`, as redis-py's with
    decode_responses=False answers it (bytes, None for a missing field)."""

    def __init__(self, url: str, timeout: float, connect_timeout: float) -> None:
        options = parse_url(url)
        self.host = options.get("host", "localhost")
        self.port = int(options.get("port", 6379))
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.setup: list[tuple[Any, ...]] = []  # sent once on each new connection
        if options.get("password"):
            user = options.get("username")
            self.setup.append(("AUTH", user, options["password"]) if user
                              else ("AUTH", options["password"]))
        if options.get("db"):
            self.setup.append(("SELECT", options["db"]))
        self.conn: _Connection | None = None
        self.connecting = asyncio.Lock()

    @staticmethod
    def supports(url: str) -> bool:
        """Plain TCP only; TLS or a unix socket stay with redis-py."""
        return url.startswith("redis://")

    async def _connection(self) -> _Connection:
        if self.conn is not None and not self.conn.lost:
            return self.conn
        async with self.connecting:  # one connect for all the callers that found none
            if self.conn is None or self.conn.lost:
                loop = asyncio.get_running_loop()
                async with asyncio.timeout(self.connect_timeout):
                    _, conn = await loop.create_connection(_Connection, self.host, self.port)
                try:
                    for command in self.setup:
                        async with asyncio.timeout(self.timeout):
                            await conn.send(hiredis.pack_command(command))
                except BaseException:
                    conn.transport.abort()  # type: ignore[union-attr]
                    raise
                self.conn = conn
        return self.conn

    async def execute_command(self, *args: Any) -> Any:
        conn = await self._connection()
        async with asyncio.timeout(self.timeout):
            return await conn.send(hiredis.pack_command(args))

    async def aclose(self) -> None:
        if self.conn is not None and self.conn.transport is not None:
            self.conn.transport.close()
        self.conn = None
