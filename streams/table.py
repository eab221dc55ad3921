"""The `events` table, whose writes reach the producer before the command is acked.

`table[key] = value` in Faust queues the changelog record in a buffer (`send_soon`) that a
background task hands to the producer later, and Faust's commit does not wait for that
buffer: `ProducerBuffer.flush()` gives up after 0.1 s with records still queued, and does
not count the record its sender task holds. So Faust could commit a command's offset before
the command's state was on its way to the changelog; a `kill -9` then lost that state for
good (the command is never redelivered, and the projections are fed from the changelog).
The kill -9 test over 20,000 commands found it: about one run in four lost a few states.

The agents stage a decided state (`stage`), and the outbox (streams/outbox.py) writes the
staged states to the local store (`store_staged`) and hands their changelog records to the
producer itself (`send`), all before it acks the commands. Faust flushes the producer before
every commit, so a committed offset always has its state in the changelog. A read sees a
staged state first: the next command of the event, in any agent, decides from it.

The four agents share the table, so two of them can write one event's state in turn, and
the producer's `send` can wait (a full batch) and let a later caller in first. Records then
reach the changelog out of order and its last record is an older state: the one a restart or
a partition move restores (the two-workers benchmark found a selection lost that way, and the
event's publish rejected). So states are staged synchronously right after deciding, and one
flush at a time sends them in order.

With RocksDB, every read was a store lookup and a JSON decode of a state that carries all its
child rows, though an event's commands come close together (a job's progress, its result,
the selection; publish, distribution, end). So the table keeps the latest decoded states in
a bounded LRU cache, written through by `store` (the memory store keeps objects already).
States are never mutated in place (the agents reassign), so a cached object is the stored
state. Faust writes the store itself only when it applies changelog records (recovery,
standby replicas) and around a rebalance; the cache is emptied then, so it never holds a
state the store no longer has.
"""

from __future__ import annotations

from asyncio import Future
from collections.abc import Iterable
from typing import Any

import faust
from cachetools import LRUCache
from faust.stores.base import SerializedStore
from faust.types import TP, EventT

__all__ = ["EventsTable"]


class EventsTable(faust.Table):
    """A Faust table with a direct read and write and an awaitable changelog send;
    recovery is Faust's own."""

    def __init__(self, *args: Any, cached_states: int = 2048, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._states: LRUCache[str, dict[str, Any]] = LRUCache(maxsize=cached_states)
        self._staged: dict[str, tuple[int, dict[str, Any]]] = {}  # decided, not yet stored

    def read(self, key: str) -> dict[str, Any] | None:
        """The state under `key`, or None: staged, else from the cache, else one store
        lookup (`table.get` makes two, a membership test across the partitions' stores and
        then the read)."""
        staged = self._staged.get(key)
        if staged is not None:
            return staged[1]
        if not isinstance(self.data, SerializedStore):
            return self.data.get(key)  # the memory store keeps objects
        state = self._states.get(key)
        if state is not None:
            return state
        raw = self.data._get(self._dumps_key(key))
        if raw is None:
            return None
        state = self.app.serializers.loads_value(self.value_type, raw,
                                                 serializer=self.value_serializer)
        self._states[key] = state
        return state

    def _dumps_key(self, key: str) -> bytes:
        return self.app.serializers.dumps_key(self.key_type, key, serializer=self.key_serializer)

    def stage(self, key: str, value: dict[str, Any], partition: int) -> None:
        """Hold `value` as the state under `key` until `store_staged` (only the newest state
        of a key is kept: one store write and one changelog record per batch). `partition`
        is the one of the command that decided it: the changelog is co-partitioned with the
        command topics."""
        self._staged[key] = (partition, value)

    def store_staged(self) -> list[tuple[int, bytes, bytes]]:
        """Store the staged states now; returns their changelog records for `send`."""
        staged, self._staged = self._staged, {}
        return [self.store(key, value, partition) for key, (partition, value) in staged.items()]

    def store(self, key: str, value: dict[str, Any], partition: int) -> tuple[int, bytes, bytes]:
        """Store `value` under `key` in `partition` now; returns the changelog record
        (partition, key, value) for `send`.

        The state is serialised once, for the store and the changelog alike, with the
        table's own serialisers (so recovery reads it back as Faust would have written it).
        Faust's own `_set` takes the partition from the event being processed, and a batch
        is stored after its events, so the partition is given.
        """
        key_bytes = self._dumps_key(key)
        value_bytes = self.app.serializers.dumps_value(self.value_type, value,
                                                       serializer=self.value_serializer)
        if isinstance(self.data, SerializedStore):
            # RocksDB: bytes in, no second encoding (faust-streaming 0.15's store internals).
            self.data._db_for_partition(partition).put(key_bytes, value_bytes)
            self.data._key_index[key_bytes] = partition
            self._states[key] = value
        else:
            self.data[key] = value  # the memory store keeps objects
        return partition, key_bytes, value_bytes

    async def send(self, record: tuple[int, bytes, bytes]) -> Future[Any]:
        """Hand a stored state's changelog record to the producer (see the module doc for
        why the caller orders these); returns the future of its delivery."""
        partition, key, value = record
        sent = await self.app.producer.send(
            self.changelog_topic.get_topic_name(), key, value, partition, None, None)
        sent.add_done_callback(self._persisted)
        return sent

    def _persisted(self, sent: Future[Any]) -> None:
        # A RocksDB store remembers the changelog offset it holds, so a restart reads the
        # changelog from there rather than from the beginning.
        if sent.cancelled() or sent.exception() is not None:
            return  # the producer's own error handling reports it; no offset to remember
        metadata = sent.result()
        self.data.set_persisted_offset(TP(metadata.topic, metadata.partition), metadata.offset)

    # Faust's own writes to the store: the cache is emptied first (see the module doc).
    def apply_changelog_batch(self, batch: Iterable[EventT]) -> None:
        self._states.clear()
        super().apply_changelog_batch(batch)

    async def on_rebalance(self, assigned: set[TP], revoked: set[TP],
                           newly_assigned: set[TP], generation_id: int = 0) -> None:
        self._states.clear()
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        self._states.clear()
        await super().on_recovery_completed(active_tps, standby_tps)
