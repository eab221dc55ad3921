"""Heals a command partition that Faust stopped feeding past an unprocessed offset.

Right after a rebalance with a backlog (a worker joining, leaving, or restarted after a
`kill -9`) Faust's fetch loop can drop the first records of a partition, then hand the agent
the ones after them. The agent never sees the dropped ones; Faust, rightly, never commits
past them (its commit stops at the first offset it has no ack for), so nothing is lost, but
they stay unprocessed until the next rebalance.

Every `GAP_CHECK_SECONDS` this guard looks, for each partition of a command topic, for that
shape: acked offsets beyond the committed one while the committed one itself was never
acked, twice in a row with the same committed offset. Then it asks Faust to seek every
partition back to its committed offset, which re-reads the dropped records; the ones after
them come again too and are duplicates (by commandId), which have no second effect.

It reads two attributes private to faust-streaming's Consumer (`_acked`,
`_committed_offset`); the dependency is pinned to 0.15.x, where they are as used here.

It heals the two-workers case (a partition moved to the survivor); after a restart with a
large backlog it has been seen not to, and the records then wait for the next rebalance or
restart (topology.md, "Delivery guarantee").
"""

from __future__ import annotations

import logging

import faust
from faust.types import TP

__all__ = ["GapGuard"]

log = logging.getLogger(__name__)


class GapGuard:
    def __init__(self, app: faust.App, topics: set[str]) -> None:
        self.app = app
        self.topics = topics
        self._suspects: dict[TP, int] = {}  # tp -> committed offset seen stuck last time

    def stuck(self) -> dict[TP, int]:
        """Partitions whose committed offset was never handed to an agent but later ones were."""
        consumer = self.app.consumer
        found: dict[TP, int] = {}
        for tp in consumer.assignment():
            if tp.topic not in self.topics:
                continue
            committed = consumer._committed_offset.get(tp)
            acked = consumer._acked.get(tp)
            if committed is not None and acked and min(acked) > committed:
                found[tp] = committed
        return found

    async def check(self) -> int:
        """One look; seeks back when a gap persisted since the last look. Returns how many."""
        if not self.app.flow_control.is_active():
            self._suspects.clear()  # a rebalance is under way: it seeks by itself
            return 0
        now = self.stuck()
        healed = {tp: offset for tp, offset in now.items() if self._suspects.get(tp) == offset}
        self._suspects = now
        if healed:
            log.warning("offsets never handed to an agent, re-reading from the committed ones:"
                        " %s", ", ".join(f"{tp.topic}[{tp.partition}]@{o}"
                                         for tp, o in sorted(healed.items())))
            await self.app.consumer.perform_seek()
            self._suspects.clear()
        return len(healed)
