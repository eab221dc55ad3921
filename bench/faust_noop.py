"""The framework's own per-record ceiling: a Faust agent that does nothing, over the four
command topics (`stream.events()`, acked as Faust acks). Run as its own process:

    python -m bench.faust_noop GROUP COUNT

It counts COUNT records from the group's committed offsets (earliest for a new group),
prints one JSON line: {"count", "first", "last"} (epoch seconds), and exits.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time

import faust

from streams.topics import COMMAND_TOPICS

__all__ = ["app"]

group, count = sys.argv[1], int(sys.argv[2])
app = faust.App(group, broker=f"kafka://{os.environ['KAFKA_BOOTSTRAP_SERVERS']}",
                consumer_auto_offset_reset="earliest", web_enabled=False,
                datadir=tempfile.mkdtemp(prefix="faust-noop-"), topic_disable_leader=True,
                broker_max_poll_records=5000, key_serializer="raw", value_serializer="raw")
commands = app.topic(*(s.name for s in COMMAND_TOPICS), key_type=bytes, value_type=bytes)
seen = {"count": 0, "first": 0.0}


@app.agent(commands)
async def nothing(stream: faust.StreamT) -> None:
    async for _ in stream.events():
        if not seen["count"]:
            seen["first"] = time.time()
        seen["count"] += 1
        if seen["count"] >= count:
            last = time.time()
            await app.consumer.commit()  # the next phase reads on from here
            # Faust sends sys.stdout to its log; the figure goes to the real one.
            print(json.dumps({"count": seen["count"], "first": seen["first"],
                              "last": last}), file=sys.__stdout__, flush=True)
            os._exit(0)  # the figure is out; no need to wait for Faust's shutdown


if __name__ == "__main__":
    logging.basicConfig(level="WARNING")
    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn", "--without-web"]
    app.main()
