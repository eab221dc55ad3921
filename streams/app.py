"""The Faust application: topics, the changelog-backed `events` table, and the codecs.

`build_pipeline()` registers the schemas (so the codecs know their ids) and wires the agents.
Path of a command: topic -> agent (decode, `lifecycle.apply`) -> outbox -> `events` table
(changelog) -> projector (sinks/) -> PostgreSQL + Redis; facts and outcomes go out on their
own topics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import faust

from eventpipe.settings import Settings
from streams.admin import EVENTS_TABLE
from streams.codec import AvroCodec, register_codecs
from streams.outbox import Outbox
from streams.partitioner import partition_for
from streams.table import EventsTable
from streams.timeouts import OpenJobs
from streams.topics import ALL_TOPICS, TopicSpec

__all__ = ["Pipeline", "build_pipeline"]


@dataclass
class Pipeline:
    settings: Settings
    app: faust.App
    events: EventsTable
    topics: dict[str, faust.TopicT]
    codecs: dict[str, AvroCodec]
    outbox: Outbox
    open_jobs: OpenJobs = field(default_factory=OpenJobs)  # for the job timer

    def topic(self, spec: TopicSpec) -> faust.TopicT:
        return self.topics[spec.name]

    def codec(self, spec: TopicSpec) -> AvroCodec:
        return self.codecs[spec.name]


def build_pipeline(settings: Settings) -> Pipeline:
    codecs = register_codecs(settings.schema_registry_url, settings.schema_compatibility)
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap_servers}",
        store=settings.table_store,
        datadir=settings.data_dir,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=1,
        table_standby_replicas=settings.table_standby_replicas,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.worker_session_timeout_seconds,
        broker_heartbeat_interval=min(3.0, settings.worker_session_timeout_seconds / 3),
        producer_acks=-1,
        producer_partitioner=partition_for,
        # A state carries its child rows (a few KiB): 16 KiB batches (the default) filled
        # after a handful of records, and every send then waited for a broker round trip.
        producer_max_batch_size=512 * 1024,
        processing_guarantee="at_least_once",
        web_enabled=True,
        web_host="127.0.0.1",
        web_bind="127.0.0.1",  # Faust binds every interface unless told
        web_port=settings.worker_web_port,
        key_serializer="raw",
        value_serializer="raw",
    )
    topics = {
        spec.name: app.topic(
            spec.name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.topic_partitions,
        )
        for spec in ALL_TOPICS
    }
    # Keys are eventIds (co-partitioned with the command topics); keys and values are
    # JSON in the changelog (Faust's default for tables), values the event states.
    events = app.tables.add(EventsTable(
        app,
        name=EVENTS_TABLE,
        key_type=str,
        partitions=settings.topic_partitions,
        beacon=app.tables.beacon,
    ))
    outbox = Outbox(app, events, settings.worker_batch_commands, settings.worker_batch_seconds)
    pipeline = Pipeline(settings, app, events, topics, codecs, outbox)

    from streams.agents import install_agents  # agents need the pipeline they run in

    install_agents(pipeline)
    return pipeline
