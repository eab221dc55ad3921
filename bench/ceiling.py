"""The ceiling for Python: a bare aiokafka loop that consumes the command topics and decodes
each message with the project's Avro codec, nothing else. Run as its own process:

    python -m bench.ceiling GROUP COUNT

It reads COUNT messages from the group's committed offsets (earliest for a new group),
commits, and prints one JSON line: {"count", "first", "last"} (epoch seconds).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

from aiokafka import AIOKafkaConsumer

from streams.codec import register_codecs
from streams.topics import COMMAND_TOPICS

__all__ = ["consume"]


async def consume(group: str, count: int) -> dict[str, float]:
    codecs = register_codecs(os.environ["SCHEMA_REGISTRY_URL"])
    consumer = AIOKafkaConsumer(
        *(s.name for s in COMMAND_TOPICS),
        bootstrap_servers=os.environ["KAFKA_BOOTSTRAP_SERVERS"], group_id=group,
        enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=10000,
        fetch_max_bytes=64 * 1024 * 1024, max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    seen, first = 0, 0.0
    try:
        while seen < count:
            batch = await consumer.getmany(timeout_ms=500, max_records=10000)
            if batch and not first:
                first = time.time()
            for tp, records in batch.items():
                codec = codecs[tp.topic]
                for record in records:
                    codec.read(record.value)
                seen += len(records)
        last = time.time()
        await consumer.commit()
    finally:
        await consumer.stop()
    return {"count": seen, "first": first, "last": last}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(consume(sys.argv[1], int(sys.argv[2])))), flush=True)
