"""`eventpipe top --once` against the suite's worker and API: what a person would read on it
(the DLQ rising by one for one poison message, the worker group's lag growing while the
worker is stopped and falling once it is back, "down" for a process that is down)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from confluent_kafka.admin import AdminClient

from eventpipe.settings import Settings
from streams.admin import EVENTS_TABLE
from streams.topics import PURPOSE, changelog_topic
from tests.conftest import ROOT, WORKER_READY, Process
from tests.pipeline import Topics
from tests.test_lifecycle_topics import STORE

WIDTH = "220"  # wide enough that no table cell wraps


class Frame:
    """One printed frame, read by row labels as a person reads the tables."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.rows: dict[str, list[str]] = {}
        for line in text.splitlines():
            cells = [c.strip() for c in line.split("│")[1:-1]]
            if cells and cells[0]:
                self.rows.setdefault(cells[0], cells[1:])

    def cell(self, label: str, column: int) -> str:
        return self.rows[label][column]

    def number(self, label: str, column: int, missing: int = 0) -> int:
        if label not in self.rows:
            return missing
        return int(self.cell(label, column).replace(",", ""))


@pytest.fixture
def top(process_env: dict[str, str], api_url: str) -> Callable[[], Frame]:
    env = dict(process_env, COLUMNS=WIDTH)
    worker_url = f"http://127.0.0.1:{process_env['WORKER_WEB_PORT']}"

    def once() -> Frame:
        done = subprocess.run(
            [sys.executable, "-m", "eventpipe.cli", "top", "--once", "--worker-url",
             worker_url, "--api-url", api_url], env=env, cwd=ROOT, capture_output=True,
            text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stdout + done.stderr
        return Frame(done.stdout)

    return once


def _until(what: str, frame: Callable[[], Frame], ok: Callable[[Frame], bool],
           timeout: float = 180) -> Frame:
    deadline = time.monotonic() + timeout  # a bound on waiting, not a speed test
    while True:
        seen = frame()
        if ok(seen):
            return seen
        assert time.monotonic() < deadline, f"{what}; last frame:\n{seen.text}"
        time.sleep(1)


@contextlib.contextmanager
def reads(api_url: str, auth: dict[str, str], event_id: str) -> Iterator[None]:
    """A little load: the event read over and over (p99 is over the last interval)."""
    stop = threading.Event()

    def read() -> None:
        with httpx.Client(base_url=api_url, headers=auth, timeout=10) as client:
            while not stop.wait(0.05):
                client.get(f"/api/events/{event_id}")

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def test_services_api_and_one_poison_message_in_the_dlq(
        top: Callable[[], Frame], topics: Topics, client: httpx.Client, api_url: str,
        auth: dict[str, str]) -> None:
    created = client.post("/api/events/purposes", headers=auth, json={
        "objective": "신규 고객 유치", "storeName": "톱가게", "industry": "카페",
        "address": "서울시 마포구"})
    assert created.status_code in (201, 202)
    route = "GET /api/events/{eventId}"
    with reads(api_url, auth, created.json()["eventDraftId"]):
        before = _until("the reads not in the API table", top,
                        lambda f: route in f.rows and f.cell(route, 1) != "-")
    for service in ("worker", "api", "broker", "registry", "postgres", "redis"):
        assert before.cell(service, 0) == "up", before.text
    assert float(before.cell(route, 0)) > 0  # requests per second
    assert float(before.cell(route, 1)) > 0  # p99 in ms
    assert before.number("POST /api/events/purposes", 2) > 0
    assert before.number("accepted", 1) > 0
    assert "Jobs (PostgreSQL)" in before.text
    poisoned = before.number("DLQ DECODE_ERROR", 1)

    topics.raw(PURPOSE.name, str(uuid.uuid4()).encode(), b"\x07 not avro at all")

    after = _until("the poison message not counted", top,
                   lambda f: f.number("DLQ DECODE_ERROR", 1) > poisoned)
    assert after.number("DLQ DECODE_ERROR", 1) == poisoned + 1
    assert top().number("DLQ DECODE_ERROR", 1) == poisoned + 1  # and no more


def purpose_lag(frame: Frame) -> int:
    """The worker group's lag summed over the rows of event.purpose.v1's partitions."""
    return sum(int(cells[2].replace(",", "")) for label, cells in frame.rows.items()
               if label.startswith(f"{PURPOSE.name}["))


def test_lag_grows_while_the_worker_is_stopped_and_falls_once_it_is_back(
        top: Callable[[], Frame], topics: Topics, worker: Process,
        settings: Settings) -> None:
    group = settings.app_id
    _until("the worker group not caught up", top, lambda f: f.number(group, 2) == 0)
    commands = 30
    user = str(uuid.uuid4())
    worker.stop()
    try:
        stopped = top()
        assert stopped.cell("worker", 0) == "down"
        topics.send_many([(PURPOSE, str(uuid.uuid4()), user, "PurposeSelected", STORE)
                          for _ in range(commands)])
        behind = _until("the lag did not grow", top,
                        lambda f: f.number(group, 2) >= commands)
        assert purpose_lag(behind) >= commands
        assert behind.cell("worker", 0) == "down"
    finally:
        worker.restart(WORKER_READY)
    caught_up = _until("the lag did not fall", top, lambda f: f.number(group, 2) == 0)
    assert purpose_lag(caught_up) == 0
    assert caught_up.cell("worker", 0) == "up"


def test_top_before_a_worker_makes_no_topic(process_env: dict[str, str],
                                            settings: Settings) -> None:
    """An operator may run `top` before any worker of an app has started: reading the lag
    must not make the app's changelog (a Metadata request naming a topic lets the broker
    auto-create it, uncompacted and with the broker's partition count)."""
    app_id = f"top-first-{uuid.uuid4().hex[:8]}"
    nowhere = "http://127.0.0.1:9"  # nothing listens: the worker and the API are down
    done = subprocess.run(
        [sys.executable, "-m", "eventpipe.cli", "top", "--once", "--worker-url", nowhere,
         "--api-url", nowhere], env=dict(process_env, APP_ID=app_id, COLUMNS=WIDTH), cwd=ROOT,
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "down" in done.stdout
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    assert changelog_topic(app_id, EVENTS_TABLE) not in admin.list_topics(timeout=30).topics
