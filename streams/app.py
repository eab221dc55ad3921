"""The Faust application: the changelog-backed `events` table, the command processor that is
its one writer, the job timer and the web page of metrics.

Path of a command: command topic -> Faust's consumer (one fetch, every command partition this
worker owns) -> `CommandProcessor` (decode, `lifecycle.apply`, deliver) -> changelog and
`events` table, facts and outcomes on their topics -> projector (sinks/) -> PostgreSQL and
Redis.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import faust
from faust.types import TP
from faust.web import Request, Response, View
from prometheus_client import generate_latest

from eventpipe.gc_freeze import freeze_startup_objects
from eventpipe.settings import Settings
from streams.admin import EVENTS_TABLE
from streams.codec import AvroCodec, register_codecs
from streams.faust_seam import PipelineApp, not_consuming
from streams.partitioner import partition_for
from streams.processor import CommandProcessor
from streams.table import EventsTable
from streams.timeouts import OpenJobs, fail_overdue_jobs
from streams.topics import COMMAND_TOPICS

__all__ = ["Pipeline", "build_pipeline"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pipeline:
    """What `build_pipeline` wired, for the worker process to run."""

    app: PipelineApp
    events: EventsTable
    processor: CommandProcessor
    codecs: dict[str, AvroCodec]


def build_app(settings: Settings) -> PipelineApp:
    app = PipelineApp(
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
        # One fetch is one batch of the processor: large under a backlog.
        broker_max_poll_records=settings.worker_batch_commands,
        consumer_max_fetch_size=16 * 1024 * 1024,
        producer_acks=-1,
        producer_partitioner=partition_for,
        processing_guarantee="at_least_once",
        web_enabled=True,
        web_host="127.0.0.1",
        web_bind=settings.worker_web_bind,  # Faust binds every interface unless told
        web_port=settings.worker_web_port,
        # Published in the group's member metadata: the API's readiness finds this page there.
        canonical_url=settings.worker_url,
        key_serializer="raw",
        value_serializer="raw",
    )
    app.fetch_max_wait_ms = settings.fetch_max_wait_ms
    return app


def build_pipeline(settings: Settings) -> Pipeline:
    codecs = register_codecs(settings.schema_registry_url, settings.schema_compatibility)
    app = build_app(settings)
    # Keys are eventIds (co-partitioned with the command topics); keys and values are JSON
    # in the changelog (Faust's default for tables), values the event states.
    events = app.tables.add(EventsTable(
        app, name=EVENTS_TABLE, key_type=str, partitions=settings.topic_partitions,
        beacon=app.tables.beacon))
    open_jobs = OpenJobs()
    processor = CommandProcessor(app, events, codecs, open_jobs,
                                 bootstrap_servers=settings.kafka_bootstrap_servers,
                                 partitions=settings.topic_partitions)
    # The command topics are subscribed (so the group assigns them with the table's
    # partitions) but never streamed: their records go to the processor in batches, and it
    # commits them itself (acks off, so Faust neither tracks nor commits them).
    for spec in COMMAND_TOPICS:
        app.topics.add(app.topic(spec.name, key_type=bytes, value_type=bytes,
                                 key_serializer="raw", value_serializer="raw",
                                 partitions=settings.topic_partitions, acks=False))
    app.route_batches(frozenset(spec.name for spec in COMMAND_TOPICS), processor.handle,
                      before_stop=processor.stop)

    @app.task
    async def start_processor() -> None:
        await processor.start()
        freeze_startup_objects("worker")

    @app.on_partitions_revoked.connect
    async def finish_batch(app: faust.App, revoked: set[TP], **_: object) -> None:
        # The batch in hand is delivered and committed before its partitions move.
        await processor.drain()
        processor.on_revoked(revoked)

    @events.on_recover
    async def reindex_open_jobs() -> None:
        # The table now holds this worker's partitions; the timer rebuilds the index on its
        # next tick, outside Faust's recovery (a scan here held up the partitions' resume).
        open_jobs.stale = True

    timeout_ms = int(settings.job_timeout_seconds * 1000)

    @app.timer(settings.job_timeout_check_seconds)
    async def job_timer() -> None:
        if open_jobs.stale:
            open_jobs.rebuild(events.items())
            log.info("%d events with unfinished jobs", len(open_jobs))
        sent = await fail_overdue_jobs(open_jobs, events.read, codecs, processor.send_command,
                                       timeout_ms)
        if sent:
            log.info("reported %d overdue jobs as failed", sent)

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            # aiohttp takes the bare media type; Prometheus reads text format 0.0.4 by default.
            return self.bytes(generate_latest(), content_type="text/plain")

    command_topics = frozenset(spec.name for spec in COMMAND_TOPICS)

    @app.page("/ready")
    class Ready(View):
        """Whether this worker decides the commands of the partitions it holds right now:
        the API's /health/ready asks every member of the group that holds any."""

        async def get(self, request: Request) -> Response:
            held = sorted(f"{tp.topic}:{tp.partition}" for tp in app.consumer.assignment()
                          if tp.topic in command_topics)
            why = not_consuming(app) or (None if processor.ready else "processor not started")
            return self.json({"consuming": why is None, "reason": why,
                              "commandPartitions": held})

    return Pipeline(app, events, processor, codecs)
