"""The pipeline's topology on Quix Streams, for the side-by-side throughput figure.

Runs in its own venv (bench/.venv-quix: Quix pins confluent-kafka and pydantic-settings
below the project's) with the project on PYTHONPATH, so it decides with the same rules
(`streams.lifecycle.apply`) and decodes and encodes with the same Avro codec: the four
command topics, merged; the event state in Quix's own RocksDB state (with its changelog);
outcomes and facts, Avro-encoded, to one output topic; states and outcomes to PostgreSQL
through Quix's PostgreSQLSink (upsert on the primary key). The project also writes Redis;
this does not, so the comparison leans to Quix's side.

Environment: KAFKA_BOOTSTRAP_SERVERS, SCHEMA_REGISTRY_URL, DATABASE_URL, QUIX_GROUP,
QUIX_STATE_DIR, QUIX_SCHEMA (PostgreSQL schema), QUIX_OUTPUT (topic), QUIX_FIRST_FILE
(where the time of the first message of each process goes).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from quixstreams import Application, State, message_context
from quixstreams.sinks.community.postgresql import PostgreSQLSink

from streams import lifecycle
from streams.codec import register_codecs
from streams.envelope import to_command
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
        command = to_command(CODECS[message_context().topic].decode(value))
        before = state.get("s")
        decision = lifecycle.apply(before, command)
    except Inapplicable:
        return []  # the project dead-letters these; the load has none
    if (decision.changed or decision.duplicate) and decision.state is not None:
        state.set("s", decision.state)
    rows: list[dict[str, Any]] = []
    if decision.changed and decision.state is not None:
        s = decision.state
        rows.append({"kind": "state", "event_id": s["eventId"], "version": s["version"],
                     "status": s["status"], "doc": json.dumps(s, ensure_ascii=False)})
    outcome = {
        "commandId": command.command_id, "eventId": command.event_id,
        "userId": command.user_id, "commandType": command.type,
        "status": "ACCEPTED" if decision.accepted else "REJECTED",
        "code": decision.code.value if decision.code else None, "message": decision.message,
        "details": list(decision.details), "eventVersion": decision.version,
        "decidedAt": time.time_ns() // 1_000_000,
    }
    rows.append({"kind": "outcome", "command_id": command.command_id,
                 "event_id": command.event_id, "status": outcome["status"],
                 "code": outcome["code"], "avro": CODECS[OUTCOME.name].encode(outcome)})
    for fact in () if decision.duplicate else decision.facts:
        rows.append({"kind": "fact", "avro": json.dumps(fact.payload, default=str).encode()})
    return rows


def main() -> None:
    pg = urlparse(os.environ["DATABASE_URL"])
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
    sdf.filter(lambda r: r["kind"] != "state").apply(lambda r: r["avro"]).to_topic(output)
    sink = PostgreSQLSink(
        host=pg.hostname or "127.0.0.1", port=pg.port or 5432, dbname=pg.path.lstrip("/"),
        user=pg.username or "", password=pg.password or "",
        table_name=lambda item: f"quix_{item.value['kind']}s",
        schema_name=os.environ["QUIX_SCHEMA"],
        primary_key_columns=lambda item: ("event_id" if item.value["kind"] == "state"
                                          else "command_id"),
        upsert_on_primary_key=True, include_metadata=False,
    )
    sdf.filter(lambda r: r["kind"] != "fact").apply(
        lambda r: {k: v for k, v in r.items() if k != "avro"}).sink(sink)
    app.run()


if __name__ == "__main__":
    main()
