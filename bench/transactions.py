"""What a Kafka transaction per batch would cost the processor, against its at-least-once
delivery, on the same broker (issue: "measure Kafka transactions"). Run as its own process:

    python -m bench.transactions [ROUNDS]

For batches of 1, 100 and 1,000 records of 1 KiB on one partition it times, per batch,
(a) the at-least-once step: send, then wait for the broker; (b) a transaction: begin, send,
`send_offsets_to_transaction` for a consumer group, commit. Prints one JSON line of
milliseconds per batch, median over ROUNDS (default 50).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
import uuid

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

__all__ = ["measure"]

SIZES = (1, 100, 1000)


async def measure(rounds: int) -> dict[str, dict[int, float]]:
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    topic = f"bench-transactions-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1)])
    plain = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0,
                             max_batch_size=2 * 1024 * 1024, max_request_size=4 * 1024 * 1024)
    txn = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0,
                           max_batch_size=2 * 1024 * 1024, max_request_size=4 * 1024 * 1024,
                           transactional_id=f"{topic}-txn")
    await plain.start()
    await txn.start()
    value = os.urandom(1024)
    found: dict[str, dict[int, float]] = {"at_least_once_ms": {}, "transaction_ms": {}}
    try:
        for size in SIZES:
            once, txns = [], []
            for i in range(rounds):
                started = time.perf_counter()
                batch = plain.create_batch()
                for _ in range(size):
                    batch.append(key=b"k", value=value, timestamp=None)
                await (await plain.send_batch(batch, topic, partition=0))
                once.append(time.perf_counter() - started)

                started = time.perf_counter()
                await txn.begin_transaction()
                batch = txn.create_batch()
                for _ in range(size):
                    batch.append(key=b"k", value=value, timestamp=None)
                sent = await txn.send_batch(batch, topic, partition=0)
                await txn.send_offsets_to_transaction({TopicPartition(topic, 0): i}, topic)
                await txn.commit_transaction()
                await sent
                txns.append(time.perf_counter() - started)
            found["at_least_once_ms"][size] = round(statistics.median(once) * 1000, 2)
            found["transaction_ms"][size] = round(statistics.median(txns) * 1000, 2)
    finally:
        await plain.stop()
        await txn.stop()
        await admin.delete_topics([topic])
        await admin.close()
    return found


if __name__ == "__main__":
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    print(json.dumps(asyncio.run(measure(rounds))), flush=True)
