"""The producer's partitioner: Kafka's murmur2 (as aiokafka and Java clients), each key
hashed once.

aiokafka hashes keys in pure Python, about 12 us a key here; every command sends three or
four records keyed by its eventId, and an event's commands come close together, so a
bounded cache of hashes saves most of that. The partitions are the same as aiokafka's
`DefaultPartitioner` gives (tests/test_partitioner.py).
"""

from __future__ import annotations

import random
from functools import lru_cache

from aiokafka.partitioner import murmur2

__all__ = ["partition_for", "partition_of"]

_murmur2 = lru_cache(maxsize=1 << 16)(murmur2)


def partition_for(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    if key is None:  # as aiokafka: any available partition
        return random.choice(available or all_partitions)
    return all_partitions[partition_of(key, len(all_partitions))]


def partition_of(key: bytes, partitions: int) -> int:
    """The partition of `key` among `partitions`, as every producer of ours picks it."""
    return (_murmur2(key) & 0x7FFFFFFF) % partitions
