"""The `events` table: a Faust table written only from delivered changelog records.

The command processor is the table's one writer. It sends each batch's newest state per
event to the changelog itself, and writes the local store only once the broker has them,
through the store's own `apply_changelog_batch` (the call Faust's recovery uses), so the
store never holds a state the changelog lacks and a restart resumes from the right offset.
Recovery and standby replicas are Faust's own (docs/decisions/0004).

Reads go through a bounded LRU of decoded states: an event's commands come close together,
and a RocksDB read is a lookup and a JSON decode of a state that carries its child rows.
Faust's own writes (recovery, standbys, rebalances) empty it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import faust
from cachetools import LRUCache
from faust.types import TP, EventT

__all__ = ["ChangelogRecord", "ChangelogWrite", "EventsTable", "FetchedChangelogRecord"]


@dataclass(frozen=True, slots=True)
class ChangelogRecord:
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes

    @property
    def tp(self) -> TP:
        return TP(self.topic, self.partition)


@dataclass(frozen=True, slots=True)
class ChangelogWrite:
    """A delivered changelog record, shaped as the stores' `apply_changelog_batch` reads an
    event: the decoded key and value, and the raw message with its partition and offset."""

    key: str
    value: dict[str, Any]
    message: ChangelogRecord


class FetchedChangelogRecord:
    """A changelog record as fetched, shaped as the stores' `apply_changelog_batch` reads a
    recovery event: the raw message (RocksDB stores its bytes as they are), and the key and
    value decoded only when a store asks (the memory store keeps them decoded)."""

    __slots__ = ("_table", "message")

    def __init__(self, table: faust.Table, record: Any) -> None:
        self._table = table
        self.message = ChangelogRecord(record.topic, record.partition, record.offset,
                                       record.key, record.value)

    @property
    def key(self) -> Any:
        table = self._table
        return table.app.serializers.loads_key(table.key_type, self.message.key,
                                               serializer=table.key_serializer)

    @property
    def value(self) -> Any:
        table, raw = self._table, self.message.value
        if raw is None:
            return None
        return table.app.serializers.loads_value(table.value_type, raw,
                                                 serializer=table.value_serializer)


class EventsTable(faust.Table):
    def __init__(self, *args: Any, cached_states: int = 4096, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._states: LRUCache[str, dict[str, Any]] = LRUCache(maxsize=cached_states)

    def read(self, key: str) -> dict[str, Any] | None:
        state = self._states.get(key)
        if state is None:
            state = self.data.get(key)  # one store lookup (`table.get` makes two)
            if state is not None:
                self._states[key] = state
        return state

    def encode(self, key: str, value: dict[str, Any]) -> tuple[bytes, bytes]:
        """The changelog record's key and value, serialised as Faust's recovery reads them."""
        serializers = self.app.serializers
        return (serializers.dumps_key(self.key_type, key, serializer=self.key_serializer),
                serializers.dumps_value(self.value_type, value,
                                        serializer=self.value_serializer))

    def write_delivered(self, writes: list[ChangelogWrite]) -> None:
        """Store states whose changelog records the broker has (and remember their offsets,
        so a restart reads the changelog from after them)."""
        self.data.apply_changelog_batch(writes, to_key=self._to_key, to_value=self._to_value)
        for write in writes:
            self._states[write.key] = write.value

    # Faust's own writes to the store: the cache is emptied first.
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
