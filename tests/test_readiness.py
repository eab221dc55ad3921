"""/health/ready tells the truth about the pipeline: DOWN, naming the stream worker and the
projector, while no worker consumes; and once it says UP a command sent at that very moment
is answered with its outcome (201 and the DRAFT), not 202.

Against the real stack, with real processes: the suite's worker is stopped for this module
(so no other member of the worker's group could answer in its place) and started again
after it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import STACK, WORKER_READY, Process, _free_port, _wait, serving_api
from tests.test_purpose_flow import PURPOSE_BODY


def _ready(url: str) -> httpx.Response:
    return httpx.get(f"{url}/health/ready", timeout=5)


@pytest.fixture(scope="module")
def no_worker(worker: Process) -> Iterator[None]:
    """The suite's worker (and its projector child) stopped; started again afterwards."""
    worker.stop()
    try:
        yield
    finally:
        worker.restart(WORKER_READY)


@pytest.fixture(scope="module")
def lone_api(process_env: dict[str, str], no_worker: None) -> Iterator[str]:
    """An API of its own, started with no worker running (only its liveness is awaited)."""
    with serving_api("test-api-readiness", process_env, until="/health/live") as url:
        yield url


def test_readiness_is_down_naming_the_pipeline_while_no_worker_runs(lone_api: str) -> None:
    # The stopped worker left its groups; one killed outright would stay a member until its
    # session timeout (10 s), hence the bound.
    deadline = time.monotonic() + 60
    while True:
        answer = _ready(lone_api)
        checks = answer.json()["checks"]
        if checks["streamWorker"]["status"] == "DOWN" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert answer.status_code == 503, answer.text
    body = answer.json()
    assert body["status"] == "DOWN"
    # The four services answer: the pipeline alone is why it is not ready.
    assert {n: checks[n]["status"] for n in ("kafka", "schemaRegistry", "postgres", "redis")} \
        == dict.fromkeys(("kafka", "schemaRegistry", "postgres", "redis"), "UP"), checks
    assert checks["streamWorker"]["status"] == "DOWN", checks
    assert "consumer group eventpipe has no members" in checks["streamWorker"]["error"], checks
    assert checks["projector"]["status"] == "DOWN", checks
    assert "eventpipe-projector" in checks["projector"]["error"], checks


def test_a_command_sent_the_moment_readiness_turns_up_is_answered_with_the_draft(
        lone_api: str, process_env: dict[str, str], auth: dict[str, str]) -> None:
    assert _ready(lone_api).status_code == 503  # no worker yet
    # The table in memory: a fresh worker reads the whole changelog before it consumes a
    # command, the window in which a readiness that looked only at the group said UP.
    fresh = Process("test-worker-readiness", ["worker"], {
        **process_env, "TABLE_STORE": "memory://", "WORKER_WEB_PORT": str(_free_port()),
        "DATA_DIR": str(STACK / "test-worker-readiness")})
    fresh.log.unlink(missing_ok=True)
    fresh.start()
    try:
        seen_down = []

        def up() -> bool:
            answer = _ready(lone_api)
            if answer.status_code != 200:
                seen_down.append(answer.json()["checks"]["streamWorker"])
            return answer.status_code == 200

        _wait("readiness UP", up, 180, fresh.proc, fresh.log)
        # At once, as a user who polled readiness after `make run` would.
        created = httpx.post(f"{lone_api}/api/events/purposes", json=PURPOSE_BODY,
                             headers=auth, timeout=30)
        assert created.status_code == 201, (created.status_code, created.text, seen_down[-3:])
        assert created.json()["status"] == "DRAFT"
        assert created.json()["eventDraftId"]
        checks = _ready(lone_api).json()["checks"]
        assert checks["streamWorker"] == {"status": "UP", "group": "eventpipe", "members": 1}
        assert checks["projector"]["status"] == "UP"
    finally:
        fresh.stop()
