"""Outages: a store that goes away is waited for, and nothing is lost or doubled."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from eventpipe.settings import Settings
from streams.topics import PURPOSE
from tests.conftest import LOGS, ROOT, STACK
from tests.kafka_helpers import window_start
from tests.oracle import log_marks, settle, verify
from tests.pipeline import Topics, applied_when_settled, outcomes_when_settled
from tests.soak import service_pid
from tests.test_api import PURPOSE_BODY, until
from tests.test_lifecycle_topics import STORE
from tests.test_projections import eventpipe

EVENTS = 2500  # x 4 commands = 10,000
PG_DATA = STACK / "postgres" / "data"


def _own_postgres() -> bool:
    """The stack's own cluster (this STACK_DIR's, whatever its port offset) is the one the
    tests use: stack.sh reports it running."""
    return Path(PG_DATA, "PG_VERSION").exists() and service_pid("postgres") is not None


def _pg_ctl(action: str) -> None:
    pg_ctl = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))[-1]
    # The new postmaster keeps whatever output it is given: a log file, never our pipes.
    subprocess.run(["runuser", "-u", "postgres", "--", str(pg_ctl), "-D", str(PG_DATA),
                    "-l", str(LOGS / "postgres.log"), "-m", "fast", "-w",
                    action], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=120)


def _restart_postgres() -> None:
    _pg_ctl("restart")


@pytest.mark.chaos
@pytest.mark.timeout(900)
def test_10000_commands_through_a_postgresql_restart_and_a_redis_outage(
        topics: Topics, settings: Settings, pg: psycopg.Connection) -> None:
    if not _own_postgres():
        pytest.skip("needs the stack's own PostgreSQL to restart it")
    since = window_start()
    user = str(uuid.uuid4())
    event_ids = [str(uuid.uuid4()) for _ in range(EVENTS)]
    commands = []
    for event_id in event_ids:
        commands += [
            (PURPOSE, event_id, user, "PurposeSelected", STORE),
            (PURPOSE, event_id, user, "DraftUpdated", {"eventName": "하나", "description": None,
                                                       "startDate": None, "endDate": None,
                                                       "channels": None}),
            (PURPOSE, event_id, user, "DraftUpdated", {"eventName": None, "description": "둘",
                                                       "startDate": None, "endDate": None,
                                                       "channels": ["NAVER_BLOG"]}),
            (PURPOSE, event_id, user, "DraftUpdated", {"eventName": "셋", "description": None,
                                                       "startDate": None, "endDate": None,
                                                       "channels": None}),
        ]
    topics.send_many(commands[: len(commands) // 2])
    _restart_postgres()  # while the first half is being projected
    topics.send_many(commands[len(commands) // 2:])
    topics.rds.shutdown(nosave=False)  # Redis away while the second half flows
    time.sleep(3)
    subprocess.run(["bash", "stack/stack.sh", "up"], cwd=ROOT, check=True, capture_output=True)

    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        deadline = time.monotonic() + 600  # a bound on waiting, not a speed test
        done = 0
        while time.monotonic() < deadline:
            done = conn.execute("SELECT count(*) FROM events WHERE user_id = %s AND version = 4",
                                (user,)).fetchone()[0]
            if done == EVENTS:
                break
            time.sleep(1)
        assert done == EVENTS
        rows = conn.execute("SELECT event_name, description, channels, count(*) FROM events"
                            " WHERE user_id = %s GROUP BY 1, 2, 3", (user,)).fetchall()
    assert rows == [("셋", "둘", '["NAVER_BLOG"]', EVENTS)]  # every command once, none twice
    settle(settings)
    # Redis included: every draft at its last version (none may be missing within its TTL).
    report = verify(settings, since, users=[user], redis_client=topics.rds,
                    codecs=topics.codecs)
    assert report.ok, str(report)
    assert report.counts["accepted"] == len(commands)
    check = eventpipe("projections", "check")
    assert check.returncode == 0, check.stdout[-3000:]
    assert check.stdout.strip().endswith("0 differences")


@pytest.mark.chaos
@pytest.mark.timeout(900)
def test_kill_9_of_the_worker_in_the_middle_of_20000_commands(
        topics: Topics, worker, settings: Settings) -> None:
    from tests.conftest import WORKER_READY

    since = window_start()
    marks = log_marks([worker.log])
    user = str(uuid.uuid4())
    event_ids = [str(uuid.uuid4()) for _ in range(5000)]
    update = {"eventName": None, "description": None, "startDate": None, "endDate": None,
              "channels": None}
    commands = []
    for event_id in event_ids:
        commands += [(PURPOSE, event_id, user, "PurposeSelected", STORE)]
        commands += [(PURPOSE, event_id, user, "DraftUpdated", {**update, "eventName": name})
                     for name in ("가", "나", "다")]
    topics.send_many(commands)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        # Let it get going, then pull the plug mid-stream.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and conn.execute(
                "SELECT count(*) FROM events WHERE user_id = %s", (user,)).fetchone()[0] < 500:
            time.sleep(0.2)
        worker.restart(WORKER_READY, sig_kill=True)
        applied_when_settled(conn, user, len(event_ids))
        outcomes_when_settled(conn, user, len(commands))
        rows = conn.execute("SELECT event_name, version, count(*) FROM events"
                            " WHERE user_id = %s GROUP BY 1, 2", (user,)).fetchall()
    # Every event exactly as its four commands say: none lost, none applied twice (a repeat
    # would have made version 5).
    assert rows == [("다", 4, len(event_ids))]
    settle(settings)
    report = verify(settings, since, users=[user], logs=marks, redis_client=topics.rds,
                    codecs=topics.codecs)
    assert report.ok, str(report)
    assert report.counts["accepted"] == len(commands)
    check = eventpipe("projections", "check")
    assert check.returncode == 0, check.stdout[-3000:]


@pytest.mark.chaos
def test_postgresql_down_readiness_names_it_and_a_command_waits_for_it(
        client: httpx.Client, auth: dict[str, str]) -> None:
    if not _own_postgres():
        pytest.skip("needs the stack's own PostgreSQL to stop it")
    _pg_ctl("stop")
    try:
        def only_postgres_down() -> bool:
            ready = client.get("/health/ready")
            checks = ready.json()["checks"]
            # The registry keeps its schemas in PostgreSQL too, so it may be DOWN as well.
            return ready.status_code == 503 and (
                checks["postgres"]["status"], checks["kafka"]["status"],
                checks["redis"]["status"]) == ("DOWN", "UP", "UP")

        # Readiness is polled: a connection left stale by an earlier outage (Redis was
        # restarted by the test before) may answer DOWN once, then reconnects.
        assert until(only_postgres_down, timeout=30), client.get("/health/ready").json()
        # Kafka takes the command; its projection waits for PostgreSQL, so no 201 in time.
        accepted = client.post("/api/events/purposes", json=PURPOSE_BODY, headers=auth)
        assert accepted.status_code == 202, accepted.text
        command_id = accepted.json()["commandId"]
    finally:
        # The stack's own start (its server options live in stack.sh, not in the data dir).
        subprocess.run(["bash", "stack/stack.sh", "up"], cwd=ROOT, check=True,
                       capture_output=True)
    assert until(lambda: client.get("/health/ready").status_code == 200, timeout=60)

    def outcome() -> dict[str, Any] | None:
        r = client.get(f"/api/events/commands/{command_id}", headers=auth)
        return r.json() if r.status_code == 200 else None

    decided = until(outcome, timeout=60)
    assert decided and decided["status"] == "ACCEPTED", decided
    event = client.get(f"/api/events/{decided['eventId']}", headers=auth)
    assert event.status_code == 200 and event.json()["status"] == "DRAFT"
