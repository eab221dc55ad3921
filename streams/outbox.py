"""The agents' outbox: what they decide, written and sent in batches under a backlog.

Deciding a command costs little; what follows it cost most: the event's whole state (a few
KiB with its child rows) serialised, written to the store, sent to the changelog, and then
read back and written again by the projector, once per command. Under a backlog an event's
commands come close together (a job's progress and result, the selection; publish,
distribution, end), so the agents hold what they decide and flush it as one batch: each
event's newest state once to the store and the changelog, then (once the broker has the
states) the outcomes, facts and dead letters in the order they were decided, then the
commands' acks. Kafka Streams' record cache and Quix Streams' checkpoints do the same, but
always; here only under load:

- a command whose partition is caught up (lag 0 after it) is flushed at once, with whatever
  is held: a lone command waits for nothing, and read-your-writes stays quick;
- under a backlog a batch is flushed at `worker_batch_commands` held commands, or when its
  oldest has waited `worker_batch_seconds` (a timer looks).

Nothing is lost by holding: a command is acked only after its records are with the
producer, and Faust flushes the producer before every commit, so a committed offset always
has its state and outcome in Kafka. A crash replays the held commands, and a replay of a
command whose state did land is a duplicate by commandId, with no second effect. A
rebalance waits for every handed-out command to be acked (Faust's `stream_wait_empty`), so a
batch is flushed before its partitions move.

One flush at a time, and a batch is taken whole (states, records, acks) without yielding
in between: records leave in the order their states were decided, which keeps the
changelog's last record per event its newest state (streams/table.py).
"""

from __future__ import annotations

import asyncio
import time

import faust
from faust.types import EventT, StreamT

from streams.table import EventsTable

__all__ = ["Outbox"]


class Outbox:
    def __init__(self, app: faust.App, events: EventsTable, max_commands: int,
                 max_seconds: float) -> None:
        self.app = app
        self.events = events
        self.max_commands = max_commands
        self.max_seconds = max_seconds
        self._records: list[tuple[str, bytes | None, bytes]] = []
        self._held: list[tuple[StreamT, EventT]] = []
        self._oldest = 0.0  # when the oldest held command was handled (monotonic)
        self._flushing = asyncio.Lock()

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        """A record to produce with the batch (after its states)."""
        self._records.append((topic, key, value))

    def hold(self, stream: StreamT, event: EventT, lag: int) -> bool:
        """Hold a handled command's ack for the batch; True when the batch is due."""
        if not self._held:
            self._oldest = time.monotonic()
        self._held.append((stream, event))
        return lag <= 0 or len(self._held) >= self.max_commands or self.overdue()

    def overdue(self) -> bool:
        return bool(self._held) and time.monotonic() - self._oldest >= self.max_seconds

    async def flush(self) -> None:
        async with self._flushing:
            # Taken whole, without yielding: what the agents decide meanwhile is the next batch.
            states = self.events.store_staged()
            records, self._records = self._records, []
            held, self._held = self._held, []
            delivered = [await self.events.send(record) for record in states]
            if delivered and records:
                # The states are in the changelog before any outcome naming them is sent: the
                # producer sends partitions independently, so an outcome could otherwise land
                # first, and a reader of outcomes (the projector, then the API's 201 or job
                # status) find the state not there yet. One broker round trip per batch.
                await asyncio.wait(delivered)
            send = self.app.producer.send
            for topic, key, value in records:
                await send(topic, key, value, None, None, None)
            for stream, event in held:
                await stream.ack(event)
