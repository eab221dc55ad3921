"""The pipeline's topology on Quix Streams, for the side-by-side throughput figure.

Runs in its own venv (bench/.venv-quix: Quix pins confluent-kafka and pydantic-settings
below the project's) with the project on PYTHONPATH, so it does exactly what the project
does, only on another framework: the same rules (`streams.lifecycle.apply`), the same Avro
codec, and the same projection (`sinks.batch`, `sinks.postgres`, `sinks.redis`: the ERD's
tables and the Redis keys). The four command topics, merged; the event state in Quix's own
RocksDB state (with its changelog); outcomes and facts, Avro-encoded, to one output topic;
states and outcomes to PostgreSQL and Redis through a Quix `BatchingSink` at each of Quix's
checkpoints (every second), folded as the project's projector folds its batches.

Environment: KAFKA_BOOTSTRAP_SERVERS, SCHEMA_REGISTRY_URL, DATABASE_URL (its search_path the
run's schema, already migrated), REDIS_URL, QUIX_GROUP, QUIX_STATE_DIR, QUIX_OUTPUT (topic),
QUIX_FIRST_FILE (where the time of the first message of each process goes).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from quixstreams import Application, State, message_context
from quixstreams.sinks import BatchingSink, SinkBatch

from eventpipe.settings import Settings
from sinks.batch import Batch
from sinks.postgres import PostgresSink
from sinks.redis import RedisSink
from streams import lifecycle
from streams.codec import register_codecs
from streams.envelope import fact_record, now_ms, outcome_record, to_command
from streams.lifecycle import Inapplicable
from streams.topics import COMMAND_TOPICS, OUTCOME

FIRST_FILE = Path(os.environ["QUIX_FIRST_FILE"])
CODECS = register_codecs(os.environ["SCHEMA_REGISTRY_URL"])
_first_seen = False


def decide(value: bytes, key: Any, timestamp: int, headers: Any,
           state: State) -> list[dict[str, Any]]:
    """One command: decode, apply to the state, and the rows it produces."""
    global _first_seen
    if not _first_seen:
        _first_seen = True
        FIRST_FILE.write_text(f"{time.time()}\n")
    try:
        command = to_command(CODECS[message_context().topic].read(value))
        before = state.get("s")
        decision = lifecycle.apply(before, command)
    except Inapplicable:
        return []  # the project dead-letters these; the load has none
    if (decision.changed or decision.duplicate) and decision.state is not None:
        state.set("s", decision.state)
    rows: list[dict[str, Any]] = []
    if decision.changed and decision.state is not None:
        rows.append({"kind": "state", "state": decision.state})
    outcome = outcome_record(command, decision, now_ms())
    rows.append({"kind": "outcome", "outcome": outcome,
                 "avro": CODECS[OUTCOME.name].encode(outcome)})
    for fact in () if decision.duplicate else decision.facts:
        spec, record = fact_record(fact, command.command_id)
        rows.append({"kind": "fact", "avro": CODECS[spec.name].encode(record)})
    return rows


class ProjectionSink(BatchingSink):
    """The project's PostgreSQL and Redis sinks, driven by Quix's checkpoints."""

    def __init__(self) -> None:
        super().__init__()
        settings = Settings()
        self.loop = asyncio.new_event_loop()  # the sinks are asyncio; Quix calls us in sync
        self.postgres = PostgresSink(settings.database_url)
        self.redis = RedisSink(settings)
        self.loop.run_until_complete(self.postgres.start())

    def write(self, batch: SinkBatch) -> None:
        fold = Batch()
        for item in batch:
            row = item.value
            if row["kind"] == "state":
                fold.add_state(row["state"])
            else:
                fold.add_outcome(row["outcome"])
        self.loop.run_until_complete(self._write(fold))

    async def _write(self, fold: Batch) -> None:
        await self.postgres.write(fold.upserts, [s["eventId"] for s in fold.deletes],
                                  fold.outcomes)
        await self.redis.write(fold.upserts, fold.deletes, fold.outcomes)


def main() -> None:
    app = Application(
        broker_address=os.environ["KAFKA_BOOTSTRAP_SERVERS"],
        consumer_group=os.environ["QUIX_GROUP"],
        auto_offset_reset="earliest",
        state_dir=os.environ["QUIX_STATE_DIR"],
        processing_guarantee="at-least-once",
        commit_interval=1.0,
        loglevel="WARNING",
    )
    output = app.topic(os.environ["QUIX_OUTPUT"], value_serializer="bytes",
                       key_serializer="bytes")
    sdf = None
    for spec in COMMAND_TOPICS:  # merged first, so one state store serves all four
        one = app.dataframe(app.topic(spec.name, value_deserializer="bytes",
                                      key_deserializer="bytes"))
        sdf = one if sdf is None else sdf.concat(one)
    assert sdf is not None
    sdf = sdf.apply(decide, stateful=True, expand=True, metadata=True)
    sdf.apply(lambda r: r.get("avro")).filter(lambda avro: avro is not None).to_topic(output)
    sdf.filter(lambda r: r["kind"] != "fact").sink(ProjectionSink())
    app.run()


if __name__ == "__main__":
    main()
