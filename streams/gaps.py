"""Keeps each command partition in offset order through Faust's rebalances.

Right after a rebalance with a backlog (a worker joining, leaving, or restarted after a
`kill -9`) faust-streaming 0.15's fetch loop can drop fetched records: it breaks off a
fetched batch when the group generation changes mid-batch, after the client's position has
moved past it. Two shapes follow, and this module guards against both:

- **A hole** (`InOrder`): the agent is handed records after the dropped ones. Applying
  them would reorder an event's commands (a distribution result before its publish), and
  Faust's commit check lets a hole of one record through. So each handler admits a record
  only at the offset it expects (the committed offset after a rebalance, then one past the
  last it admitted); a record beyond it is marked handled without being applied or acked
  (so no commit can pass it) and the consumer seeks back to the committed offsets, which
  re-reads the hole and then the skipped records, in order.
- **A stall** (`StallGuard`): every fetched record of a partition was dropped and none
  follows, so no agent sees anything. Every `STALL_CHECK_SECONDS` the guard looks for records
  on the broker beyond the committed offset while neither the committed nor the read offset
  moves, twice in a row, and seeks back the same way. An agent that is only slow moves its
  committed offset (Faust commits every few seconds); one that is blocked (the registry
  away) looks stalled, and the seek then re-reads records that are duplicates (by
  commandId), which have no second effect. Such a partition has been found out of Faust's
  fetch set (its stream buffer was full when a rebalance cleared it, so it never drained),
  so the guard puts it back in before the seek.

**Seeking back** (`seek_back`): Faust seeks with aiokafka's `seek_to_committed`, which
leaves a partition whose committed offset is none or 0 where it is: after dropped records,
that is past them, so a partition nobody has committed yet (a new group, a new topic) kept
its hole or stalled for good, through any number of seeks. Such partitions are sought to
their earliest offset (the group's `auto_offset_reset` is `earliest`), and `InOrder`
expects that offset first.

Both read private attributes of faust-streaming's Consumer (`_acked`, `_committed_offset`,
`_read_offset`, `_unacked_messages`, `_active_partitions`, `_buffered_partitions`); the
dependency is pinned to 0.15.x, where they are as used here.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust
from faust.types import TP, Message

__all__ = ["InOrder", "StallGuard", "seek_back"]

log = logging.getLogger(__name__)


class InOrder:
    """Per partition, the offset the agent must see next; see the module's doc."""

    SEEK_EVERY_SECONDS = 1.0  # a hole is seen once per skipped record; one seek serves all

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self._next: dict[TP, tuple[int, int]] = {}  # tp -> (generation, next offset)
        self._sought_at = 0.0

    async def admit(self, message: Message) -> bool:
        """Whether to apply this record; False: skipped, a seek back is under way."""
        tp = message.tp
        seen = self._next.get(tp)
        if seen is not None and seen[0] == message.generation_id:
            expected = seen[1]
        else:  # a new assignment: Faust has sought to the committed offset
            expected = await self._first(tp)
        if message.offset <= expected:  # in order, or a re-read
            self._next[tp] = (message.generation_id, message.offset + 1)
            return True
        # Handled without an ack: Faust's ack skips a message already marked acked, so
        # its commit stays below this offset until the record is read again and applied.
        message.acked = True
        self.app.consumer._unacked_messages.discard(message)
        if time.monotonic() - self._sought_at >= self.SEEK_EVERY_SECONDS:
            self._sought_at = time.monotonic()
            log.warning("%s[%s]: offset %s handed to the agent before %s; re-reading from"
                        " the committed offsets", tp.topic, tp.partition, message.offset,
                        expected)
            await seek_back(self.app, {tp})
        return False

    async def _first(self, tp: TP) -> int:
        """The offset a new assignment reads first: the committed one, else the earliest."""
        committed = self.app.consumer._committed_offset.get(tp)
        if committed:
            return committed
        return (await self.app.consumer.earliest_offsets(tp)).get(tp, 0)


async def seek_back(app: faust.App, tps: set[TP]) -> None:
    """Every partition to its committed offset, and `tps` without one to their earliest."""
    consumer = app.consumer
    try:
        await consumer.perform_seek()
        # perform_seek leaves the read offset None (nothing committed) or 0 (committed at 0)
        # exactly where aiokafka did not seek.
        assigned = consumer.assignment()
        unsought = [tp for tp in tps if tp in assigned and not consumer._read_offset.get(tp)]
        if unsought:
            await consumer.seek_wait(dict(await consumer.earliest_offsets(*unsought)))
    except Exception as exc:  # a rebalance under way revoked a partition: it seeks itself
        log.info("seek back not done (%s); the rebalance seeks to the committed offsets", exc)


class StallGuard:
    def __init__(self, app: faust.App, topics: set[str]) -> None:
        self.app = app
        self.topics = topics
        self._suspects: dict[TP, Any] = {}  # tp -> what it looked like at the last look

    async def stalls(self) -> dict[TP, Any]:
        """Partitions with records beyond the committed offset and nothing acked or read."""
        consumer = self.app.consumer
        tps = [tp for tp in consumer.assignment()
               if tp.topic in self.topics and not consumer._acked.get(tp)]
        if not tps:
            return {}
        ends = await consumer.highwaters(*tps)
        found: dict[TP, Any] = {}
        for tp in tps:
            committed = consumer._committed_offset.get(tp)
            if ends.get(tp, 0) > (committed or 0):
                found[tp] = (committed, consumer._read_offset.get(tp))
        return found

    async def check(self) -> int:
        """One look; seeks back when a stall persisted since the last look. Returns how
        many partitions were stalled."""
        if not self.app.flow_control.is_active():
            self._suspects.clear()  # a rebalance is under way: it seeks by itself
            return 0
        now = await self.stalls()
        stalled = {tp: seen for tp, seen in now.items() if self._suspects.get(tp) == seen}
        self._suspects = now
        if stalled:
            consumer = self.app.consumer
            log.warning("records never handed to an agent, fetching again from the committed"
                        " offsets: %s", ", ".join(
                            f"{tp.topic}[{tp.partition}] (fetched:"
                            f" {tp in (consumer._active_partitions or ())}, buffer full:"
                            f" {tp in consumer._buffered_partitions})" for tp in sorted(stalled)))
            # Faust takes a partition out of its fetch set while the stream's buffer is full
            # and puts it back when the buffer drains; a buffer cleared by a rebalance never
            # drains, so the partition is never fetched again. Put it back, then seek.
            consumer._buffered_partitions.difference_update(stalled)
            consumer.resume_partitions(stalled)
            await seek_back(self.app, set(stalled))
            self._suspects.clear()
        return len(stalled)
