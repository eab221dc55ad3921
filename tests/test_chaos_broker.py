"""Issue 8.2: Kafka restarts while commands flow, from the API and from a plain producer.

The API's producer retries until the broker is back (a request that waits too long answers
503 SERVICE_UNAVAILABLE with Retry-After, never another 5xx), the worker reconnects by
itself, and every command is applied once: the projections equal the changelog.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import psycopg
import pytest
from confluent_kafka import KafkaError, Message, Producer

from api.auth import issue_token
from eventpipe.settings import Settings
from streams.registry import record_namespace
from streams.topics import PURPOSE
from tests.conftest import ROOT, Process
from tests.kafka_helpers import window_start
from tests.oracle import log_marks, settle, verify
from tests.pipeline import Topics, java_partitioned, outcomes_when_settled
from tests.test_lifecycle_topics import STORE
from tests.test_projections import eventpipe

EVENTS = 1000  # x 4 commands = 4,000 produced directly
API_CLIENTS = 6
NAMES = ("가", "나", "다")


def _stack(*args: str) -> str:
    """stack.sh on the stack the tests use (STACK_DIR/STACK_PORT_OFFSET pass through)."""
    return subprocess.run(["bash", "stack/stack.sh", *args], cwd=ROOT, check=True,
                          capture_output=True, text=True, timeout=300).stdout


def _kafka_pid() -> int | None:
    for line in _stack("status").splitlines():
        name, state, pid, *_ = line.split()
        if name == "kafka":
            return int(pid) if state == "running" and pid.isdigit() else None
    return None


def _stop_kafka(pid: int) -> None:
    """TERM (a controlled shutdown, as stack.sh's own stop), and wait until it is gone."""
    os.kill(pid, 15)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(pid, 9)


@dataclass
class Answer:
    store_name: str
    status: int
    code: str | None
    retry_after: str | None
    started: float
    ended: float


def _api_load(api_url: str, token: str, stop: threading.Event) -> list[Answer]:
    """One client creating drafts until told to stop, each with a store name of its own."""
    answers = []
    with httpx.Client(base_url=api_url, timeout=120,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        while not stop.is_set():
            name = f"broker-{uuid.uuid4()}"
            started = time.monotonic()
            r = client.post("/api/events/purposes", json={
                "objective": "신규 고객 유치", "storeName": name, "industry": "카페",
                "address": "서울"})
            body = r.json()
            answers.append(Answer(name, r.status_code, body.get("code"),
                                  r.headers.get("retry-after"), started, time.monotonic()))
            if r.status_code == 503:
                time.sleep(float(r.headers.get("retry-after", "1")))
    return answers


def _direct_commands(topics: Topics, user: str) -> list[tuple[str, bytes]]:
    commands = []
    update = {"eventName": None, "description": None, "startDate": None, "endDate": None,
              "channels": None}
    for _ in range(EVENTS):
        event_id = str(uuid.uuid4())
        payloads = [("PurposeSelected", STORE),
                    *(("DraftUpdated", {**update, "eventName": n}) for n in NAMES)]
        for command_type, payload in payloads:
            commands.append((event_id, topics.codecs[PURPOSE.name].encode({
                "commandId": str(uuid.uuid4()), "eventId": event_id, "userId": user,
                "occurredAt": int(time.time() * 1000),
                "payload": (f"{record_namespace(PURPOSE)}.{command_type}", payload)})))
    return commands


@pytest.mark.chaos
def test_a_broker_restart_mid_stream_loses_nothing_and_doubles_nothing(
        topics: Topics, settings: Settings, api_url: str, worker: Process) -> None:
    kafka = _kafka_pid()
    if kafka is None:
        pytest.skip("needs the stack's own Kafka to restart it")
    since = window_start()
    marks = log_marks([worker.log])
    user, api_user = str(uuid.uuid4()), str(uuid.uuid4())
    commands = _direct_commands(topics, user)
    failures: list[KafkaError] = []

    def delivered(err: KafkaError | None, _: Message) -> None:
        if err is not None:
            failures.append(err)

    producer = Producer({**java_partitioned(settings), "enable.idempotence": True})

    def produce(part: list[tuple[str, bytes]]) -> None:
        for event_id, value in part:
            while True:
                try:
                    producer.produce(PURPOSE.name, key=event_id.encode(), value=value,
                                     on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.1)

    stop = threading.Event()
    with ThreadPoolExecutor(API_CLIENTS) as pool:
        loads = [pool.submit(_api_load, api_url, issue_token(settings, api_user), stop)
                 for _ in range(API_CLIENTS)]
        produce(commands[: len(commands) // 2])
        producer.flush(60)
        _stop_kafka(kafka)
        gone = time.monotonic()  # from here until `up` starts it again, there is no broker
        produce(commands[len(commands) // 2:])  # queued by the producer while Kafka is away
        # Longer than a request waits for the broker, so some are told to retry.
        time.sleep(settings.api_produce_timeout_seconds + 2)
        back = time.monotonic()
        _stack("up")
        assert producer.flush(120) == 0
        time.sleep(5)  # the API's clients go on a little with the broker back
        stop.set()
        answers = [a for f in loads for a in f.result()]
    assert failures == []
    assert worker.proc.poll() is None  # the same worker process reconnected by itself

    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and conn.execute(
                "SELECT (SELECT count(*) FROM events WHERE user_id = %s AND version = 4)"
                " + (SELECT count(*) FROM events WHERE user_id = %s)", (user, api_user),
                ).fetchone()[0] < EVENTS + sum(a.status in (201, 202) for a in answers):
            time.sleep(1)
        outcomes_when_settled(conn, user, len(commands))
        rows = conn.execute("SELECT event_name, version, count(*) FROM events"
                            " WHERE user_id = %s GROUP BY 1, 2", (user,)).fetchall()
        stored = dict(conn.execute("SELECT store_name, count(*) FROM events WHERE user_id = %s"
                                   " GROUP BY 1", (api_user,)).fetchall())
    # The direct commands: every one applied, none twice (a repeat would make version 5).
    assert rows == [(NAMES[-1], 4, EVENTS)]

    # The API: only 201/202 or a 503 that says to retry; no other 5xx.
    assert {a.status for a in answers} <= {201, 202, 503}, {a.status for a in answers}
    refused = [a for a in answers if a.status == 503]
    assert all(a.code == "SERVICE_UNAVAILABLE" and a.retry_after for a in refused)
    accepted = [a for a in answers if a.status in (201, 202)]
    # Requests made while there was no broker waited, then were told to retry; once it was
    # back, the same API process (its producer reconnected) accepted again.
    assert refused and [a for a in accepted if a.started > back]
    assert [a for a in accepted if a.started > gone and a.ended < back] == []
    # Refused by the API itself (a 503 with its code, above), never left hanging until the
    # client gave up: a client timeout would have ended its load thread with an error.
    # Every accepted request is stored exactly once; a refused one at most once (its
    # message may have reached the broker just before the request gave up).
    assert {a.store_name: stored.get(a.store_name) for a in accepted} == {
        a.store_name: 1 for a in accepted}
    assert all(stored.get(a.store_name, 0) <= 1 for a in refused)
    assert set(stored) <= {a.store_name for a in answers}
    assert len(accepted) > API_CLIENTS

    settle(settings)
    report = verify(settings, since, users=[user, api_user], logs=marks,
                    redis_client=topics.rds, codecs=topics.codecs)
    assert report.ok, str(report)
    # The direct commands, each decided once, and every accepted request's command.
    assert report.counts["commands"] >= len(commands) + len(accepted)
    check = eventpipe("projections", "check")
    assert check.returncode == 0, check.stdout[-3000:]
    assert check.stdout.strip().endswith("0 differences")
