"""The cached partitioner places every key where aiokafka's own would (logic alone: the
pipeline's end-to-end tests run with it on the real broker)."""

from __future__ import annotations

import uuid

from aiokafka.partitioner import DefaultPartitioner

from streams.partitioner import partition_for


def test_keys_land_on_the_partitions_aiokafka_chooses() -> None:
    default = DefaultPartitioner()
    keys = [str(uuid.uuid4()).encode() for _ in range(2000)] + [b"", b"x", "가".encode()]
    for partitions in ([0], [0, 1], list(range(12))):
        for key in keys:
            expected = default(key, partitions, partitions)
            assert partition_for(key, partitions, partitions) == expected
            assert partition_for(key, partitions, partitions) == expected  # cached


def test_a_record_without_key_goes_to_an_available_partition() -> None:
    assert {partition_for(None, [0, 1, 2], [2]) for _ in range(20)} == {2}
