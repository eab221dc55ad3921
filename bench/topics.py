"""A clean broker for a benchmark: every topic deleted, the pipeline's made again.

Only ever run against the benchmark's own stack (`make bench` starts one): the pipeline's
topic names are fixed, so there is no other way to start from empty topics.
"""

from __future__ import annotations

import time

from confluent_kafka.admin import AdminClient, NewTopic

from streams.topics import ALL_TOPICS

__all__ = ["reset_topics"]


def reset_topics(bootstrap: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = [t for t in admin.list_topics(timeout=30).topics if not t.startswith("__")]
    if existing:
        for future in admin.delete_topics(existing, operation_timeout=60).values():
            future.result()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # deletion is asynchronous on the broker
        left = set(admin.list_topics(timeout=30).topics) & set(existing)
        if not left:
            break
        time.sleep(0.5)
    for future in admin.create_topics(
            [NewTopic(s.name, partitions, 1) for s in ALL_TOPICS]).values():
        future.result()
