"""The agents' offset-order admission (logic alone, over a stand-in for Faust's consumer
state; the faults it answers are reproduced on the real stack by test_outages' kill -9 and
test_chaos_two_workers, which assert the exact final state)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from faust.types import TP

from streams.gaps import InOrder

TP0 = TP("event.publish.v1", 0)


@dataclass(eq=False)
class Msg:
    offset: int
    generation_id: int = 1
    tp: TP = TP0
    acked: bool = False


@dataclass
class Consumer:
    """Faust's consumer state as aiokafka leaves it: `perform_seek` moves only partitions
    committed past 0 (their read offset becomes the committed one, the others' None)."""

    _committed_offset: dict[TP, int] = field(default_factory=dict)
    _unacked_messages: set[Any] = field(default_factory=set)
    earliest: int = 0
    seeks: int = 0
    _read_offset: dict[TP, int | None] = field(default_factory=dict)
    sought: dict[TP, int] = field(default_factory=dict)

    async def perform_seek(self) -> None:
        self.seeks += 1
        self._read_offset = {TP0: self._committed_offset.get(TP0) or None}

    def assignment(self) -> set[TP]:
        return {TP0}

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.earliest for tp in tps}

    async def seek_wait(self, offsets: dict[TP, int]) -> None:
        self.sought.update(offsets)


@dataclass
class App:
    consumer: Consumer


async def test_records_are_admitted_in_offset_order_from_the_committed_one() -> None:
    app = App(Consumer({TP0: 10}))
    order = InOrder(app)  # type: ignore[arg-type]
    assert [await order.admit(Msg(o)) for o in (10, 11, 12)] == [True, True, True]
    assert app.consumer.seeks == 0


async def test_a_record_past_a_hole_is_skipped_unacked_and_the_consumer_seeks_back() -> None:
    app = App(Consumer({TP0: 10}))
    order = InOrder(app)  # type: ignore[arg-type]
    skipped = Msg(11)  # 10 was dropped by the fetch loop
    app.consumer._unacked_messages.add(skipped)
    assert not await order.admit(skipped)
    # Marked acked so Faust's own ack records nothing: no commit can pass offset 10.
    assert skipped.acked and skipped not in app.consumer._unacked_messages
    assert app.consumer.seeks == 1
    assert not await order.admit(Msg(12))  # still waiting for 10; one seek serves all
    assert app.consumer.seeks == 1
    # The seek brings 10, then 11 and 12 again, in order.
    assert [await order.admit(Msg(o)) for o in (10, 11, 12)] == [True, True, True]


async def test_a_new_generation_starts_from_the_committed_offset_and_re_reads_pass() -> None:
    app = App(Consumer({TP0: 10}))
    order = InOrder(app)  # type: ignore[arg-type]
    assert [await order.admit(Msg(o)) for o in (10, 11, 12, 13)] == [True] * 4
    app.consumer._committed_offset[TP0] = 12  # a rebalance; Faust sought to 12
    assert await order.admit(Msg(12, generation_id=2))
    assert not await order.admit(Msg(14, generation_id=2))  # 13 missing in this generation
    assert await order.admit(Msg(13, generation_id=2))


async def test_a_partition_never_committed_starts_at_its_earliest_record() -> None:
    order = InOrder(App(Consumer(earliest=5)))  # type: ignore[arg-type]
    assert await order.admit(Msg(5))
    assert not await order.admit(Msg(7))


async def test_a_hole_in_a_partition_never_committed_is_read_again_from_the_earliest() -> None:
    # aiokafka's seek_to_committed does not move a partition without a committed offset, so
    # the seek back must: else the records before 3 would never come (and Faust, with
    # nothing committed, would commit past them).
    app = App(Consumer())
    order = InOrder(app)  # type: ignore[arg-type]
    assert not await order.admit(Msg(3))
    assert app.consumer.seeks == 1 and app.consumer.sought == {TP0: 0}
    assert [await order.admit(Msg(o)) for o in (0, 1, 2, 3)] == [True] * 4


async def test_a_committed_partition_is_left_to_perform_seek() -> None:
    app = App(Consumer({TP0: 10}))
    order = InOrder(app)  # type: ignore[arg-type]
    assert not await order.admit(Msg(12))
    assert app.consumer.seeks == 1 and app.consumer.sought == {}
