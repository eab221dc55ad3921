"""The order a fetch's records are decided in (`streams.processor.in_decision_order`): the
same whatever order aiokafka lists the topics in, so a replay decides as the first pass did
(a kill -9 test once saw two commands of one timestamp decided in one order and, replayed,
answered in the other)."""

from __future__ import annotations

from itertools import permutations

from aiokafka.structs import ConsumerRecord

from streams.processor import in_decision_order
from streams.topics import IMAGE, PUBLISH, PURPOSE, RECOMMENDATION


def _records(topic: str, *stamps: int) -> list[ConsumerRecord]:
    return [ConsumerRecord(topic, 0, offset, stamp, 0, b"e", b"", None, 1, 0, ())
            for offset, stamp in enumerate(stamps)]


def _decided(lists: list[list[ConsumerRecord]]) -> list[tuple[str, int]]:
    return [(r.topic, r.offset) for r in in_decision_order(lists)]


def test_topics_merge_by_timestamp_and_ties_go_in_the_topics_order_whatever_the_fetchs() -> None:
    fetched = [_records(IMAGE.name, 5, 7), _records(PURPOSE.name, 5, 9),
               _records(PUBLISH.name, 5), _records(RECOMMENDATION.name, 4, 5)]
    expected = [(RECOMMENDATION.name, 0),  # 4
                (PURPOSE.name, 0), (RECOMMENDATION.name, 1), (IMAGE.name, 0),  # 5, in rank
                (PUBLISH.name, 0),
                (IMAGE.name, 1),  # 7
                (PURPOSE.name, 1)]  # 9
    for order in permutations(fetched):
        assert _decided(list(order)) == expected


def test_one_topics_records_stay_in_offset_order_even_when_their_clocks_disagree() -> None:
    # A record's timestamp is its producer's clock: within a topic, Kafka's order wins.
    assert _decided([_records(IMAGE.name, 9, 3, 6)]) == [(IMAGE.name, 0), (IMAGE.name, 1),
                                                        (IMAGE.name, 2)]
