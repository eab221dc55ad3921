"""The soak: realistic lifecycles for SOAK_MINUTES while the services crash on a seeded
random schedule, then the oracle (tests/oracle.py) over everything that was sent.

Load: users drive whole lifecycles through the API (purpose, AI recommendations from the AI
worker, a choice, images from the content worker, a choice, dates and channels, publish,
distribution, sometimes end or discard), and a share goes straight to the command topics from
a confluent-kafka producer with librdkafka's default partitioner (CRC32: the pipeline
forwards those commands to their key's partition), with a few poison messages of each kind.
Faults (`KINDS`): kill -9 of the broker, the stream worker, its projector child and each
collaborator; PostgreSQL stopped with `-m immediate`; Redis killed -9; the registry killed
while a command written with a schema id the worker has not seen is in flight. Each is
restarted as an operator would (`stack.sh up`, or the process started again), and the
recovery path is shown by a line in a log after the fault.

Run by `eventpipe soak` / `make soak` (own processes) and by `tests/test_soak.py` (the
suite's worker); both write the report with `write_report`.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import redis
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema

from api.auth import issue_token
from eventpipe.settings import Settings
from streams.codec import AvroCodec, register_codecs
from streams.processor import MAX_COMMAND_BYTES
from streams.registry import local_schema, record_namespace, registry_client
from streams.topics import PUBLISH, PURPOSE, RECOMMENDATION, TopicSpec
from tests.conftest import LOGS, ROOT, STACK, WORKER_READY, Process, _wait
from tests.kafka_helpers import window_start
from tests.oracle import Poison, Report, log_marks, settle, verify
from tests.pipeline import java_partitioned

__all__ = ["KINDS", "Pipeline", "Soak", "write_report"]

KINDS = ("broker", "postgres", "redis", "registry", "worker", "projector",
         "ai-worker", "content-worker", "distribution-worker")
COLLABORATORS = ("ai-worker", "content-worker", "distribution-worker")
# Faults that restart a process of ours wait for the broker and registry to be there.
PROCESS_KINDS = frozenset({"worker", "projector", *COLLABORATORS})
STACK_KINDS = frozenset({"broker", "registry"})
OBJECTIVES = ["신규 고객 유치", "재방문 유도", "매출 증대", "인지도 향상"]
INDUSTRIES = ["카페", "음식점", "미용", "편의점", "헬스", "학원"]
CHANNELS = ["URIDONGNE_TV", "INSTAGRAM", "KAKAO_CHANNEL", "NAVER_BLOG", "GENIE_TV",
            "RINGO_BIZ"]
UPDATE = {"eventName": None, "description": None, "startDate": None, "endDate": None,
          "channels": None}
# Recovery shown: a line in a log written after the fault (name of the log, text).
EVIDENCE: dict[str, tuple[str, str]] = {
    "broker": ("kafka", "Recovering unflushed segment"),
    "postgres": ("postgres", "automatic recovery in progress"),
    "redis": ("redis", "DB loaded from append only file"),
    "registry": ("worker", "registry unavailable"),
    "worker": ("worker", "[^---Recovery]: Recovery complete"),
    "projector": ("worker", "the projector process exited (code -9); starting it again"),
    "ai-worker": ("ai-worker", "ai-worker ready"),
    "content-worker": ("content-worker", "content-worker ready"),
    "distribution-worker": ("distribution-worker", "distribution-worker ready"),
}


def stack(*args: str) -> str:
    """stack.sh on the stack the soak uses (STACK_DIR/STACK_PORT_OFFSET pass through)."""
    return subprocess.run(["bash", "stack/stack.sh", *args], cwd=ROOT, check=True,
                          capture_output=True, text=True, timeout=600).stdout


def service_pid(name: str) -> int | None:
    for line in stack("status").splitlines():
        found, _state, pid, *_ = [*line.split(), "", "", ""]
        if found == name and pid.isdigit():
            return int(pid)
    return None


def _gone(pid: int) -> None:
    try:
        psutil.Process(pid).wait(timeout=60)
    except psutil.NoSuchProcess:
        pass


def kill_9(pid: int) -> None:
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        return
    _gone(pid)


@dataclass
class Fault:
    kind: str
    at: float  # seconds since the soak began
    killed: float | None = None
    restarted: float | None = None
    recovered: float | None = None  # a probe command decided and projected again
    overlapped: list[str] = field(default_factory=list)
    evidence: str | None = None
    note: str = ""
    expect: list[str] = field(default_factory=list)  # log texts that show the recovery


@dataclass
class Pipeline:
    """The processes of ours a soak may crash and start again."""

    settings: Settings
    worker: Process
    api_url: str
    collaborators: dict[str, Process]
    log_offsets: dict[str, int] = field(default_factory=dict)

    def logs(self) -> dict[str, Path]:
        return {"worker": self.worker.log, **{k: p.log for k, p in self.collaborators.items()},
                "kafka": LOGS / "kafka.log", "postgres": LOGS / "postgres.log",
                "redis": LOGS / "redis.log", "registry": LOGS / "registry.log"}

    def projector_pid(self) -> int | None:
        assert self.worker.proc is not None
        try:
            children = psutil.Process(self.worker.proc.pid).children()
        except psutil.NoSuchProcess:
            return None
        for child in children:
            cmdline = " ".join(child.cmdline())
            if "spawn_main" in cmdline and "resource_tracker" not in cmdline:
                return child.pid
        return None


class Soak:
    def __init__(self, pipeline: Pipeline, minutes: float, rate: float, seed: int,
                 kinds: tuple[str, ...] = KINDS, faults: int | None = None,
                 direct_share: float = 0.3) -> None:
        self.p = pipeline
        self.s = pipeline.settings
        self.minutes = minutes
        self.rate = rate
        self.seed = seed
        self.random = random.Random(seed)
        self.kinds = kinds
        self.fault_count = faults if faults is not None else max(len(kinds),
                                                                 round(minutes * 1.6))
        self.direct_share = direct_share
        self.codecs = register_codecs(self.s.schema_registry_url)
        self.stop = threading.Event()
        self.users: set[str] = set()
        self.poison: list[Poison] = []
        self.sent = Counter[str]()  # commands sent, by path (api, direct, probe)
        self.answers = Counter[str]()  # API answers by status
        self.errors: list[str] = []
        self.faults: list[Fault] = []
        self.active: set[str] = set()
        self._lock = threading.Lock()
        self._stack_lock = threading.Lock()
        self._tokens = threading.Semaphore(0)
        self.started = 0.0
        self.ended = 0.0
        self.report: Report | None = None
        # log_level 2: the broker's own crashes are on the schedule, their refused
        # connections are not news.
        self.direct = Producer({"bootstrap.servers": self.s.kafka_bootstrap_servers,
                                "acks": "all", "enable.idempotence": True, "log_level": 2})
        self.murmur = Producer({**java_partitioned(self.s), "enable.idempotence": True,
                                "log_level": 2})
        self.rds = redis.Redis.from_url(self.s.redis_url, decode_responses=True,
                                        socket_timeout=5)

    # ------------------------------------------------------------ the run

    def run(self) -> Report:
        since = window_start()
        marks = log_marks([self.p.worker.log, *(c.log for c in self.p.collaborators.values())])
        self.p.log_offsets = {name: (path.stat().st_size if path.exists() else 0)
                              for name, path in self.p.logs().items()}
        self.started = time.monotonic()
        duration = self.minutes * 60
        threads = [threading.Thread(target=self._pace, daemon=True)]
        users = max(2, int(self.rate * (1 - self.direct_share) / 2) + 2)
        threads += [threading.Thread(target=self._api_user, args=(i,), daemon=True)
                    for i in range(users)]
        threads += [threading.Thread(target=self._direct_user, daemon=True)]
        schedule = self._schedule(duration)
        threads += [threading.Thread(target=self._fault, args=(f,), daemon=True)
                    for f in schedule]
        for t in threads:
            t.start()
        while time.monotonic() - self.started < duration:
            time.sleep(0.5)
        self.stop.set()
        for t in threads:
            t.join(timeout=900)
        self.ended = time.monotonic()
        self.direct.flush(120)
        self.murmur.flush(120)
        settle(self.s, collaborators=True)
        self.report = verify(self.s, since, users=self.users, poison=self.poison,
                             logs=marks, codecs=self.codecs)
        self.report.counts["sent"] = sum(self.sent.values())
        return self.report

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    # ------------------------------------------------------------ pacing

    def _pace(self) -> None:
        """A token per command at `rate` per second (a user waits for one per command)."""
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self.stop.is_set():
            next_at += interval
            self._tokens.release()
            time.sleep(max(0.0, next_at - time.monotonic()))
        for _ in range(1000):
            self._tokens.release()  # let every waiting user see the stop

    def _token(self) -> bool:
        self._tokens.acquire()
        return not self.stop.is_set()

    def _new_user(self) -> str:
        user = str(uuid.uuid4())
        with self._lock:
            self.users.add(user)
        return user

    # ------------------------------------------------------------ API users

    def _api_user(self, number: int) -> None:
        rnd = random.Random(f"{self.seed}-api-{number}")
        with httpx.Client(base_url=self.p.api_url, timeout=60) as client:
            while not self.stop.is_set():
                user = self._new_user()
                client.headers["Authorization"] = f"Bearer {issue_token(self.s, user)}"
                try:
                    self._lifecycle(client, rnd)
                except _Abandon:
                    pass
                except Exception as exc:  # the load goes on; the oracle judges
                    self.errors.append(f"api user {number}: {type(exc).__name__}: {exc}")

    def _call(self, client: httpx.Client, method: str, path: str,
              body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One command through the API, retried on 503/429/transport errors as a client
        would (a new commandId each time: the API's own), until the stop."""
        for _ in range(200):
            if not self._token():
                raise _Abandon
            try:
                response = client.request(method, path, json=body)
            except httpx.HTTPError as exc:
                self.answers[type(exc).__name__] += 1
                time.sleep(1)
                continue
            self.answers[str(response.status_code)] += 1
            self.sent["api"] += 1
            if response.status_code in (429, 503):
                time.sleep(float(response.headers.get("retry-after", "1")))
                continue
            if response.status_code >= 400:
                raise _Abandon  # a rejection (the model says the same): this lifecycle ends
            if response.status_code == 204:
                return {}
            answer = response.json()
            if response.status_code == 202 and "jobId" not in answer:
                return self._decided(client, answer["commandId"])
            return answer
        raise _Abandon

    def _polled(self, client: httpx.Client, path: str) -> Iterator[dict[str, Any]]:
        """`path`'s 200 answers, asked every half second until the soak stops (_Abandon)."""
        while not self.stop.is_set():
            try:
                response = client.get(path)
            except httpx.HTTPError:
                time.sleep(1)
                continue
            if response.status_code == 200:
                yield response.json()
            time.sleep(0.5)
        raise _Abandon

    def _decided(self, client: httpx.Client, command_id: str) -> dict[str, Any]:
        for outcome in self._polled(client, f"/api/events/commands/{command_id}"):
            if outcome["status"] != "ACCEPTED":
                raise _Abandon
            event = client.get(f"/api/events/{outcome['eventId']}")
            return event.json() if event.status_code == 200 else {"eventId": outcome["eventId"]}
        raise _Abandon

    def _job(self, client: httpx.Client, job_id: str) -> dict[str, Any]:
        for body in self._polled(client, f"/api/events/jobs/{job_id}/status"):
            if body["status"] == "COMPLETED":
                return body
            if body["status"] == "FAILED":
                raise _Abandon
        raise _Abandon

    def _lifecycle(self, client: httpx.Client, rnd: random.Random) -> None:
        draft = self._call(client, "POST", "/api/events/purposes", {
            "objective": rnd.choice(OBJECTIVES), "storeName": f"가게 {rnd.randrange(10**6)}",
            "industry": rnd.choice(INDUSTRIES), "address": "서울시 강남구"})
        event_id = draft.get("eventDraftId") or draft["eventId"]
        event = f"/api/events/{event_id}"
        if rnd.random() < 0.1:
            self._call(client, "DELETE", event)
            return
        if rnd.random() < 0.3:
            self._call(client, "PATCH", event, {"eventName": f"이벤트 {rnd.randrange(1000)}"})
        job = self._call(client, "POST", f"{event}/ai-recommendations", {})
        done = self._job(client, job["jobId"])
        recs = done.get("recommendations") or self._call_get(client, event)["recommendations"]
        self._call(client, "PUT", f"{event}/recommendations",
                   {"recommendationId": rnd.choice(recs)["recommendationId"]})
        job = self._call(client, "POST", f"{event}/content-generation",
                         {"styles": [rnd.choice(["SIMPLE", "FANCY", "TRENDY"])],
                          "platforms": ["KAKAO_CHANNEL"]})
        done = self._job(client, job["jobId"])
        images = done.get("images") or self._call_get(client, event)["images"]
        self._call(client, "PUT", f"{event}/images/{images[0]['imageId']}/select")
        channels = rnd.sample(CHANNELS, rnd.randint(1, 3))
        self._call(client, "PATCH", event, {"startDate": "2026-12-01",
                                            "endDate": "2026-12-31", "channels": channels})
        if rnd.random() < 0.1:
            self._call(client, "DELETE", event)
            return
        self._call(client, "POST", f"{event}/publish", {})
        if rnd.random() < 0.5:
            while not self.stop.is_set():  # the distribution worker's report first
                results = self._call_get(client, event).get("distributionResults") or []
                if results and all(r["status"] != "PENDING" for r in results):
                    break
                time.sleep(0.5)
            self._call(client, "POST", f"{event}/end", {})

    def _call_get(self, client: httpx.Client, path: str) -> dict[str, Any]:
        while not self.stop.is_set():
            try:
                response = client.get(path)
            except httpx.HTTPError:
                time.sleep(1)
                continue
            if response.status_code == 200:
                return response.json()
            time.sleep(0.5)
        raise _Abandon

    # ------------------------------------------------------------ direct producers

    def _encode(self, spec: TopicSpec, event_id: str, user: str, command_type: str,
                payload: dict[str, Any], codec: AvroCodec | None = None) -> tuple[str, bytes]:
        command_id = str(uuid.uuid4())
        return command_id, (codec or self.codecs[spec.name]).encode({
            "commandId": command_id, "eventId": event_id, "userId": user,
            "occurredAt": int(time.time() * 1000),
            "payload": (f"{record_namespace(spec)}.{command_type}", payload)})

    def _produce(self, producer: Producer, topic: str, key: bytes | None,
                 value: bytes | None) -> None:
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                producer.poll(0)
                return
            except BufferError:
                producer.poll(0.1)

    def _direct_user(self) -> None:
        """Whole purpose-topic lifecycles from librdkafka's default partitioner, and poison
        of every kind now and then, at `direct_share` of the rate."""
        rnd = random.Random(f"{self.seed}-direct")
        poison_every = 25
        sent = 0
        while not self.stop.is_set():
            user = self._new_user()
            event_id = str(uuid.uuid4())
            steps: list[tuple[str, dict[str, Any]]] = [("PurposeSelected", {
                "objective": "NEW_CUSTOMERS", "storeName": f"직접 {rnd.randrange(10**6)}",
                "industry": rnd.choice(INDUSTRIES), "address": "부산시 해운대구",
                "storeId": None})]
            steps += [("DraftUpdated", {**UPDATE, "eventName": f"이름 {i}"})
                      for i in range(rnd.randint(1, 4))]
            if rnd.random() < 0.2:
                steps.append(("DraftDiscarded", {}))
            for command_type, payload in steps:
                if not self._share_token(rnd):
                    return
                _, value = self._encode(PURPOSE, event_id, user, command_type, payload)
                self._produce(self.direct, PURPOSE.name, event_id.encode(), value)
                self.sent["direct"] += 1
                sent += 1
                if sent % poison_every == 0:
                    self._send_poison(rnd, event_id, user, sent // poison_every)

    def _share_token(self, rnd: random.Random) -> bool:
        """Direct commands take their share of the tokens."""
        while not self.stop.is_set():
            if not self._token():
                return False
            if rnd.random() < self.direct_share:
                return True
            self._tokens.release()  # an API user's
            time.sleep(0.01)
        return False

    def _send_poison(self, rnd: random.Random, event_id: str, user: str, n: int) -> None:
        """One poison message, of each kind in turn."""
        kind = n % 7
        key = event_id.encode()
        if kind == 0:
            value: bytes | None = b"\x00\x00\x00\x00\x01 not a command"
            self._poison(PURPOSE.name, key, value, "DECODE_ERROR")
        elif kind == 1:
            value = b"\x00\x7f\xff\xff\xf0" + os.urandom(20)
            self._poison(PURPOSE.name, key, value, "UNKNOWN_SCHEMA")
        elif kind == 2:
            _, value = self._encode(PURPOSE, event_id, user, "DraftUpdated",
                                    {**UPDATE, "eventName": "키 없음"})
            self._poison(PURPOSE.name, None, value, "NULL_KEY")
        elif kind == 3:
            _, value = self._encode(PURPOSE, event_id, user, "DraftUpdated",
                                    {**UPDATE, "eventName": "남의 키"})
            self._poison(PURPOSE.name, str(uuid.uuid4()).encode(), value, "KEY_MISMATCH")
        elif kind == 4:
            _, value = self._encode(PURPOSE, event_id, user, "DraftUpdated",
                                    {**UPDATE, "description": "x" * (MAX_COMMAND_BYTES + 10)})
            self._poison(PURPOSE.name, key, value, "TOO_LARGE",
                         kept=value[:MAX_COMMAND_BYTES])
        elif kind == 5:
            _, value = self._encode(PURPOSE, event_id, user, "DraftUpdated",
                                    {**UPDATE, "eventName": "널\x00문자"})
            self._poison(PURPOSE.name, key, value, "INVALID_TEXT")
        else:
            # A report for a job the event never had: the event must exist first (else it
            # is EVENT_005, an answer, not a dead letter).
            event_id, user = self._decided_draft()
            _, value = self._encode(RECOMMENDATION, event_id, user,
                                    "RecommendationJobProgress",
                                    {"jobId": str(uuid.uuid4()), "progress": 10})
            self._poison(RECOMMENDATION.name, event_id.encode(), value, "UNKNOWN_JOB")
        # A distribution result for a draft, now and then.
        if n % 5 == 0:
            event_id, user = self._decided_draft()
            key = event_id.encode()
            _, value = self._encode(PUBLISH, event_id, user, "DistributionCompleted",
                                    {"results": [{"channel": "INSTAGRAM", "status": "SUCCESS",
                                                  "message": None}]})
            self._poison(PUBLISH.name, key, value, "UNEXPECTED_RESULT")

    def _decided_draft(self) -> tuple[str, str]:
        """A new draft, decided (its outcome is in Redis or PostgreSQL): (eventId, userId)."""
        user, event_id = self._new_user(), str(uuid.uuid4())
        command_id, value = self._encode(PURPOSE, event_id, user, "PurposeSelected", {
            "objective": "REVISIT", "storeName": "독", "industry": "카페", "address": "서울",
            "storeId": None})
        self._produce(self.murmur, PURPOSE.name, event_id.encode(), value)
        self.murmur.flush(120)
        self.sent["direct"] += 1
        for _ in range(3000):
            try:
                if self.rds.exists(f"command:outcome:{command_id}"):
                    return event_id, user
            except (redis.RedisError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"draft {event_id} never decided")

    def _poison(self, topic: str, key: bytes | None, value: bytes, code: str,
                kept: bytes | None = None) -> None:
        # Poison is produced with murmur2: a forwarded copy would be dead-lettered twice.
        self._produce(self.murmur, topic, key, value)
        self.murmur.flush(60)
        with self._lock:
            self.poison.append(Poison(topic, kept if kept is not None else value, code))
        self.sent["poison"] += 1

    # ------------------------------------------------------------ faults

    def _schedule(self, duration: float) -> list[Fault]:
        """`fault_count` faults, every kind before any kind twice, at seeded random times
        within the first 85% of the run (several overlap: each lasts a few seconds)."""
        kinds: list[str] = []
        while len(kinds) < self.fault_count:
            batch = list(self.kinds)
            self.random.shuffle(batch)
            kinds += batch
        kinds = kinds[: self.fault_count]
        times = sorted(self.random.uniform(0.05, 0.85) * duration for _ in kinds)
        self.faults = [Fault(kind, at) for kind, at in zip(kinds, times, strict=True)]
        return self.faults

    def _fault(self, fault: Fault) -> None:
        while self.elapsed() < fault.at:
            time.sleep(0.2)
        down = self.random.uniform(2, 8)
        exclusive = fault.kind in PROCESS_KINDS or fault.kind in STACK_KINDS
        # A process of ours is not started while the broker or registry is away (and the
        # broker or registry is not killed while one starts): those do not overlap.
        lock = self._stack_lock if exclusive else _NoLock()
        try:
            with lock:
                with self._lock:
                    fault.overlapped = sorted(self.active)
                    self.active.add(fault.kind)
                try:
                    self._inject(fault, down)
                finally:
                    with self._lock:
                        self.active.discard(fault.kind)
            fault.recovered = self._probe()
            fault.evidence = self._evidence(fault)
        except Exception as exc:
            fault.note = f"{type(exc).__name__}: {exc}"
            self.errors.append(f"fault {fault.kind}: {traceback.format_exc()[-1500:]}")

    def _inject(self, fault: Fault, down: float) -> None:
        kind = fault.kind
        offsets = {name: (path.stat().st_size if path.exists() else 0)
                   for name, path in self.p.logs().items()}
        fault.note = json.dumps(offsets)  # where to look for the evidence
        if kind in ("broker", "redis", "registry"):
            name = {"broker": "kafka", "redis": "redis", "registry": "registry"}[kind]
            pid = service_pid(name)
            if pid is None:
                raise RuntimeError(f"{name} is not running")
            if kind == "registry":
                in_flight = self._new_schema_codec()
            fault.killed = self.elapsed()
            kill_9(pid)
            if kind == "registry":
                self._in_flight(in_flight)
            time.sleep(down)
            stack("up")
        elif kind == "postgres":
            fault.killed = self.elapsed()
            _pg_ctl("stop", "immediate")
            time.sleep(down)
            stack("up")
        elif kind == "worker":
            fault.killed = self.elapsed()
            self.p.worker.restart(WORKER_READY, timeout=300, sig_kill=True)
        elif kind == "projector":
            pid = self.p.projector_pid()
            if pid is None:
                raise RuntimeError("no projector child")
            fault.killed = self.elapsed()
            kill_9(pid)  # the worker starts it again by itself: the recovery under test
        else:
            proc = self.p.collaborators[kind]
            # The job in hand is done again by the restarted worker: its log says so.
            fault.expect = [f"event {e} done" for e in self._mid_job(kind)]
            fault.killed = self.elapsed()
            proc.restart(f"{kind} ready", timeout=180, sig_kill=True)
        fault.restarted = self.elapsed()

    def _mid_job(self, kind: str) -> list[str]:
        """Wait (a little) for a job of this collaborator in progress, so the kill lands
        in the middle of one; the events of the jobs in progress."""
        job_type = {"ai-worker": "AI_RECOMMENDATION", "content-worker": "IMAGE_GENERATION"}
        if kind not in job_type:
            return []
        with psycopg.connect(self.s.database_url, connect_timeout=5, autocommit=True) as c:
            for _ in range(200):
                rows = c.execute("SELECT event_id::text FROM jobs WHERE status = 'PROCESSING'"
                                 " AND job_type = %s AND user_id = ANY(%s::uuid[])",
                                 (job_type[kind], list(self.users))).fetchall()
                if rows:
                    return [r[0] for r in rows]
                time.sleep(0.05)
        return []

    def _new_schema_codec(self) -> AvroCodec:
        """A schema id no process has seen: the purpose schema with a doc of its own,
        registered under a scratch subject (so it is a new id and never the latest
        version of a pipeline subject)."""
        client = registry_client(self.s.schema_registry_url)
        schema = {**local_schema(PURPOSE), "doc": f"soak {uuid.uuid4()}"}
        text = json.dumps(schema, ensure_ascii=False)
        schema_id = client.register_schema(f"soak-{uuid.uuid4()}-value", Schema(text, "AVRO"))
        return AvroCodec(PURPOSE, client, schema_id)

    def _in_flight(self, codec: AvroCodec) -> None:
        """Drafts written with the new schema id, produced while the registry is away."""
        for _ in range(3):
            user, event_id = self._new_user(), str(uuid.uuid4())
            _, value = self._encode(PURPOSE, event_id, user, "PurposeSelected", {
                "objective": "REVISIT", "storeName": "새 스키마", "industry": "카페",
                "address": "제주시", "storeId": None}, codec=codec)
            self._produce(self.murmur, PURPOSE.name, event_id.encode(), value)
            self.sent["in flight"] += 1
        self.murmur.flush(60)

    def _probe(self) -> float:
        """Seconds since the soak began when a new draft was decided and projected in both
        stores again (retried until it is)."""
        user, event_id = self._new_user(), str(uuid.uuid4())
        _, value = self._encode(PURPOSE, event_id, user, "PurposeSelected", {
            "objective": "REVISIT", "storeName": "탐침", "industry": "카페",
            "address": "서울", "storeId": None})
        self._produce(self.murmur, PURPOSE.name, event_id.encode(), value)
        self.murmur.flush(120)
        self.sent["probe"] += 1
        for _ in range(3000):
            try:
                if self.rds.hget(f"event:draft:{event_id}", "version") is not None:
                    with psycopg.connect(self.s.database_url, connect_timeout=5) as c:
                        if c.execute("SELECT 1 FROM events WHERE event_id = %s",
                                     (event_id,)).fetchone():
                            return self.elapsed()
            except (redis.RedisError, psycopg.Error, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"probe {event_id} never projected")

    def _evidence(self, fault: Fault, offsets: dict[str, int] | None = None) -> str | None:
        offsets = offsets if offsets is not None else json.loads(fault.note or "{}")
        log_name, text = EVIDENCE[fault.kind]
        texts = fault.expect or [text]
        path = self.p.logs()[log_name]
        fault.note = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if path.exists():
                with path.open("rb") as f:
                    f.seek(offsets.get(log_name, 0))
                    for line in f.read().decode("utf-8", "replace").splitlines():
                        if any(t in line for t in texts):
                            return f"{path.name}: {line.strip()[:160]}"
            time.sleep(0.5)
        if fault.expect:  # the job in hand had been committed just before the kill
            fault.expect = []
            found = self._evidence(fault, offsets)
            return found and f"(no job in hand to redo) {found}"
        return None


class _Abandon(Exception):
    """This lifecycle stops (the soak ends, or the pipeline rejected a step)."""


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


def _pg_ctl(action: str, mode: str = "fast") -> None:
    pg_ctl = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))[-1]
    subprocess.run(["runuser", "-u", "postgres", "--", str(pg_ctl), "-D",
                    str(STACK / "postgres" / "data"), "-m", mode, "-w", action],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=120)


# ------------------------------------------------------------------ the report

def write_report(soak: Soak, path: Path) -> None:
    report = soak.report
    assert report is not None
    seconds = soak.ended - soak.started
    sent = sum(soak.sent.values())
    kinds = Counter(f.kind for f in soak.faults)
    lines = [
        "# Soak",
        "",
        f"Run {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}: `SOAK_MINUTES={soak.minutes:g}"
        f" SOAK_RATE={soak.rate:g} SOAK_SEED={soak.seed}` (`make soak`, `eventpipe soak`;"
        " `tests/soak.py`, judged by `tests/oracle.py`).",
        "",
        f"**Result: {'PASS' if passed(soak) else 'FAIL'}** — lost {len(report.lost)},"
        f" doubled {len(report.doubled)}, other differences {len(report.differences)}.",
        "",
        "| | |",
        "|---|---|",
        f"| minutes of load | {seconds / 60:.1f} |",
        f"| commands sent | {sent} ({', '.join(f'{k} {v}' for k, v in sorted(soak.sent.items()))})"
        " |",
        f"| rate held | {sent / seconds:.1f} commands/s (asked {soak.rate:g}) |",
        f"| commands on the topics, checked | {report.counts['commands']} of"
        f" {report.counts['events']} events (collaborators' reports and timers included) |",
        f"| applied (accepted) / rejected | {report.counts['accepted']} /"
        f" {report.counts['rejected']} |",
        f"| dead letters (all poison sent: {len([1 for _ in soak.poison])}) |"
        f" {report.counts['dead letters']} |",
        f"| facts announced, checked | {report.counts['facts']} |",
        f"| redelivered by design (at-least-once) | outcomes"
        f" {report.counts['outcomes redelivered']}, facts {report.counts['facts redelivered']},"
        f" dead letters {report.counts['dead letters redelivered']}, command copies"
        f" {report.counts['command copies']} |",
        f"| commands on a wrong partition (forwarded) | {report.counts['on a wrong partition']}"
        " |",
        f"| API answers | {', '.join(f'{k}: {v}' for k, v in sorted(soak.answers.items()))} |",
        f"| faults | {len(soak.faults)} of {len(kinds)} kinds:"
        f" {', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))} |",
        f"| **lost** | **{len(report.lost)}** |",
        f"| **doubled** | **{len(report.doubled)}** |",
        "",
        "## Faults",
        "",
        "Seconds since the load began. Down: killed until started again (by `stack.sh up`, or"
        " the process started again as an operator would; the projector child is started"
        " again by its worker). Recovered: a new draft produced after the restart was"
        " decided and is in PostgreSQL and Redis. Evidence: the line in a log, written after"
        " the fault, that shows the recovery path ran.",
        "",
        "| # | kind | at | down | recovered after restart | overlapped with | evidence |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, f in enumerate(soak.faults, 1):
        down = f"{f.restarted - f.killed:.1f} s" if f.killed and f.restarted else "-"
        rec = f"{f.recovered - f.restarted:.1f} s" if f.recovered and f.restarted else "-"
        lines.append(f"| {i} | {f.kind} | {f.at:.0f} | {down} | {rec} |"
                     f" {', '.join(f.overlapped) or '-'} |"
                     f" {(f.evidence or 'NONE ' + f.note).replace('|', '/')} |")
    lines += [
        "",
        "## Lost and doubled: the definitions",
        "",
        "At-least-once delivery (topology.md, \"Delivery guarantee\") may deliver a fact, an"
        " outcome or a dead letter twice after a crash; each carries the commandId or jobId"
        " that caused it and every consumer applies a repeat once, so a user sees nothing"
        " twice. Those copies are counted above as redelivered and are not failures."
        " The oracle (tests/oracle.py) applies `streams.lifecycle` to every command of the"
        " soak's events in the order the pipeline decided them and calls:",
        "",
        "- **lost**: a command sent with no outcome and no dead letter; a fact the model"
        " announces that is not on its topic; a changelog state, PostgreSQL row or Redis key"
        " (within its TTL) missing or behind the model; a poison message not in the DLQ.",
        "- **doubled**: a state applied twice (changelog, PostgreSQL or Redis ahead of the"
        " model), two outcomes of one command that contradict each other (status or code),"
        " a command with both an outcome and a dead letter, a fact the model does not"
        " announce, a projection of an event the model discarded.",
        "- any other field that differs from the model (outcome, fact, state, document as the"
        " API's PostgreSQL path builds it, Redis document, job, DLQ entry not sent as"
        " poison, a traceback in a log) is a difference and fails the run too.",
        "",
    ]
    if not report.ok or soak.errors:
        lines += ["## What the oracle and the load reported", "", "```", str(report)]
        lines += [e[-600:] for e in soak.errors[:20]]
        lines += ["```", ""]
    else:
        lines += ["## Oracle", "", "```", str(report), "```", ""]
    path.write_text("\n".join(lines))


# ------------------------------------------------------------------ standalone

def _env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "SCHEMA_REGISTRY_URL": settings.schema_registry_url,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "TABLE_STORE": "rocksdb://",
        "DATA_DIR": str(STACK / "soak-worker"),
        "BLOB_DIR": str(STACK / "soak-blobs"),
        "JOB_TIMEOUT_SECONDS": "3600",  # every job is answered, whatever crashed
        "WORKER_STEP_SECONDS": "0.05",
        "PYTHONUNBUFFERED": "1",
    })
    return env


@dataclass
class _Running:
    procs: list[Process]

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def start_pipeline(settings: Settings) -> tuple[Pipeline, _Running]:
    """The worker, the API and the three collaborators, as `eventpipe run` starts them."""
    import socket

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    env = _env(settings)
    env["WORKER_WEB_PORT"] = str(free_port())
    port = free_port()
    api_url = f"http://127.0.0.1:{port}"
    env["PUBLIC_BASE_URL"] = api_url
    running = _Running([])
    worker = Process("soak-worker", ["worker"], env)
    worker.log.unlink(missing_ok=True)
    worker.start()
    running.procs.append(worker)
    _wait("stream worker", lambda: WORKER_READY in worker.log.read_text(), 300,
          worker.proc, worker.log)
    api = Process("soak-api", ["api", "--port", str(port)], {**env, "API_ACCESS_LOG": "false"})
    api.log.unlink(missing_ok=True)
    api.start()
    running.procs.append(api)
    _wait("API", lambda: httpx.get(f"{api_url}/health/ready", timeout=3).status_code == 200,
          120, api.proc, api.log)
    collaborators = {}
    for name in COLLABORATORS:
        proc = Process(f"soak-{name}", [name], env)
        proc.log.unlink(missing_ok=True)
        proc.start()
        running.procs.append(proc)
        _wait(name, lambda p=proc: " ready: " in p.log.read_text(), 120, proc.proc, proc.log)
        collaborators[name] = proc
    return Pipeline(settings, worker, api_url, collaborators), running


@dataclass
class Options:
    minutes: float = 10.0
    rate: float = 10.0
    seed: int = 18
    report: Path = field(default_factory=lambda: ROOT / "bench" / "SOAK.md")


def options_from_env() -> Options:
    return Options(minutes=float(os.environ.get("SOAK_MINUTES", "10")),
                   rate=float(os.environ.get("SOAK_RATE", "10")),
                   seed=int(os.environ.get("SOAK_SEED", "18")))


def main(options: Options, echo: Callable[[str], None] = print) -> int:
    """`eventpipe soak`: its own processes, one soak, the report; 0 when the oracle agrees."""
    import fcntl

    settings = Settings()
    lock = STACK / "pytest.lock"  # never beside a test session on the same stack
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        pipeline, running = start_pipeline(settings)
        try:
            soak = Soak(pipeline, options.minutes, options.rate, options.seed)
            echo(f"soak: {options.minutes:g} min at {options.rate:g} commands/s, seed"
                 f" {options.seed}, {soak.fault_count} faults")
            report = soak.run()
        finally:
            running.stop()
    write_report(soak, options.report)
    echo(str(report))
    echo(f"soak: wrote {options.report}")
    return 0 if passed(soak) else 1


def passed(soak: Soak) -> bool:
    """The oracle agrees, the load ran without an error, every fault shows its recovery."""
    return bool(soak.report and soak.report.ok and not soak.errors
                and all(f.evidence for f in soak.faults))
