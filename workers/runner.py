"""The loop every collaborator worker shares: consume a job topic, do the job, report back.

Commit protocol, at-least-once (the same order as the stream worker's):

1. poll one job from the job topic (group `<app id>-<worker name>`, auto-commit off);
2. decode it (undecodable bytes go to the DLQ with their reason, and the partition moves on);
3. do the job, producing each report (progress, result, failure) with acks=all and waiting
   for the broker's ack;
4. only then commit the job's offset.

A crash between 3 and 4 does the job again. That is harmless because every report's
commandId derives from the job (`report_id`), and the pipeline applies a commandId once; the
results carry deterministic ids too (recommendations, images, blob names), so a redone job
writes the same things. A job older than the pipeline's timeout is skipped: the job timer
has failed it already and nobody waits for it (deliveries never expire).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
import uuid
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord

from eventpipe.settings import Settings
from streams.codec import AvroCodec, DecodeError, register_codecs
from streams.envelope import command_record, dead_letter_record, now_ms
from streams.topics import DLQ, TopicSpec

__all__ = ["JobWorker", "Reporter", "report_id", "run_job_worker"]

log = logging.getLogger(__name__)
_REPORT_NAMESPACE = uuid.UUID("8d3b7c52-2f0e-4f5e-9d4a-6a1c2e9b7f30")


def report_id(*parts: object) -> str:
    """A commandId that is the same every time the same job reports the same thing."""
    return str(uuid.uuid5(_REPORT_NAMESPACE, ":".join(str(p) for p in parts)))


class Reporter:
    """Writes one job's reports to the topic the pipeline reads them from, keyed by event."""

    def __init__(self, producer: AIOKafkaProducer, codec: AvroCodec, job: dict[str, Any]) -> None:
        self._producer = producer
        self._codec = codec
        self.job = job
        self.event_id = str(job["eventId"])

    async def send(self, record: str, payload: dict[str, Any], command_id: str) -> None:
        value = self._codec.encode(command_record(self._codec.spec, record, self.event_id,
                                                  str(self.job["userId"]), payload,
                                                  command_id=command_id))
        await self._producer.send_and_wait(self._codec.spec.name, value,
                                           key=self.event_id.encode())


class JobWorker:
    """One collaborator: which topic it reads, which it answers on, and what a job is."""

    name: str
    jobs: TopicSpec  # what it consumes
    reports: TopicSpec  # where its progress, results and failures go
    # Skip a job older than the pipeline's job timeout: the timer has failed it already.
    # Not for deliveries: a published event is delivered however late.
    expires: bool = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def open(self) -> None:
        """Acquire clients (pools, HTTP sessions) before the first job."""

    async def close(self) -> None:
        """Release what `open` acquired."""

    async def handle(self, job: dict[str, Any], reporter: Reporter) -> None:
        """Do one job and report it, its failures included. What it raises instead goes to
        the DLQ as JOB_ERROR, and the pipeline's job timer fails the job."""
        raise NotImplementedError

    async def step(self) -> None:
        """The pause between progress reports, so a client polling the job sees them."""
        await asyncio.sleep(self.settings.worker_step_seconds)


class _Loop:
    def __init__(self, worker: JobWorker) -> None:
        s = worker.settings
        self.worker = worker
        self.codecs = register_codecs(s.schema_registry_url, s.schema_compatibility)
        self.consumer = AIOKafkaConsumer(
            worker.jobs.name,
            bootstrap_servers=s.kafka_bootstrap_servers,
            group_id=f"{s.app_id}-{worker.name}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(s.worker_session_timeout_seconds * 1000),
            heartbeat_interval_ms=int(min(3.0, s.worker_session_timeout_seconds / 3) * 1000),
        )
        # murmur2 on the key, like Faust: a report lands on its event's partition.
        self.producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap_servers,
                                         acks="all", enable_idempotence=True)
        self.timeout_ms = int(s.job_timeout_seconds * 1000)

    async def run(self, stopping: asyncio.Event) -> None:
        await self.producer.start()
        await self.consumer.start()
        await self.worker.open()
        log.info("%s ready: %s -> %s", self.worker.name, self.worker.jobs.name,
                 self.worker.reports.name)
        try:
            while not stopping.is_set():
                batches = await self.consumer.getmany(timeout_ms=500, max_records=1)
                for tp, messages in batches.items():
                    for message in messages:
                        await self._one(message)
                        # 4. commit only after the job's reports are acknowledged
                        await self.consumer.commit({tp: message.offset + 1})
        finally:
            await self.worker.close()
            await self.consumer.stop()
            await self.producer.stop()

    async def _one(self, message: ConsumerRecord) -> None:
        try:
            job = self.codecs[self.worker.jobs.name].decode(message.value)
        except DecodeError as exc:
            await self._dead_letter(message, exc.code, exc.message)
            return
        age_ms = now_ms() - _millis(job.get("requestedAt"))
        if self.worker.expires and age_ms > self.timeout_ms:
            log.info("%s: skipping job of event %s, %d s old (timed out already)",
                     self.worker.name, job["eventId"], age_ms // 1000)
            return
        reporter = Reporter(self.producer, self.codecs[self.worker.reports.name], job)
        started = time.perf_counter()
        try:
            await self.worker.handle(job, reporter)
        except Exception as exc:  # a job that breaks the worker must not stall the partition
            log.exception("%s: job of event %s failed", self.worker.name, job["eventId"])
            await self._dead_letter(message, "JOB_ERROR", f"{type(exc).__name__}: {exc}")
            return
        log.info("%s: event %s done in %.2f s", self.worker.name, job["eventId"],
                 time.perf_counter() - started)

    async def _dead_letter(self, message: ConsumerRecord, code: str, reason: str) -> None:
        log.warning("dead letter %s[%s]@%s: %s %s", message.topic, message.partition,
                    message.offset, code, reason)
        key, letter = dead_letter_record(message.topic, message.partition, message.offset,
                                         message.key, message.value, code, reason)
        await self.producer.send_and_wait(DLQ.name, self.codecs[DLQ.name].encode(letter),
                                          key=key)


def _millis(value: Any) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return int(value or 0)


async def _serve(worker: JobWorker) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await _Loop(worker).run(stopping)


def run_job_worker(worker: JobWorker) -> None:
    """Run until SIGTERM or Ctrl-C; the job in hand is finished and committed first."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(worker))

