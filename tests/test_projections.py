"""Issue 4: the ERD's constraints, idempotent and forward-only sinks, TTLs, check and rebuild."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx
import psycopg
import pytest
import redis
from confluent_kafka.admin import AdminClient

from eventpipe.settings import Settings
from sinks.postgres import PostgresSink
from sinks.redis import RedisSink
from streams.topics import PURPOSE, RECOMMENDATION
from tests.conftest import ROOT
from tests.pipeline import Topics
from tests.test_lifecycle_topics import TRENDS, new_draft, recommendations


def eventpipe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "eventpipe.cli", *args], capture_output=True,
                          text=True, timeout=600, cwd=ROOT)


# ------------------------------------------------------------------ constraints

@pytest.fixture
def event_row(pg: psycopg.Connection) -> Iterator[str]:
    event_id = str(uuid.uuid4())
    pg.execute(
        "INSERT INTO events (event_id, user_id, store_id, objective, status, created_at,"
        " updated_at, store_name, industry, address, version) VALUES (%s, %s, %s,"
        " 'REVISIT', 'DRAFT', now(), now(), 's', 'i', 'a', 1)",
        (event_id, str(uuid.uuid4()), str(uuid.uuid4())))
    yield event_id
    pg.execute("DELETE FROM events WHERE event_id = %s", (event_id,))


def _recommendation(pg: psycopg.Connection, event_id: str, selected: bool) -> str:
    rec_id = str(uuid.uuid4())
    pg.execute(
        "INSERT INTO ai_recommendations (recommendation_id, event_id, event_name, description,"
        " promotion_type, target_audience, is_selected, created_at, updated_at) VALUES"
        " (%s, %s, 'n', 'd', 'p', 't', %s, now(), now())", (rec_id, event_id, selected))
    return rec_id


def test_the_database_refuses_a_second_selected_recommendation(
        pg: psycopg.Connection, event_row: str) -> None:
    _recommendation(pg, event_row, selected=True)
    _recommendation(pg, event_row, selected=False)
    with pytest.raises(psycopg.errors.UniqueViolation):
        _recommendation(pg, event_row, selected=True)


def test_the_database_refuses_a_second_selected_image(pg: psycopg.Connection,
                                                      event_row: str) -> None:
    insert = ("INSERT INTO generated_images (image_id, event_id, image_url, style, platform,"
              " is_selected, created_at, updated_at) VALUES (%s, %s, 'u', 'SIMPLE',"
              " 'INSTAGRAM', true, now(), now())")
    pg.execute(insert, (str(uuid.uuid4()), event_row))
    with pytest.raises(psycopg.errors.UniqueViolation):
        pg.execute(insert, (str(uuid.uuid4()), event_row))


@pytest.mark.parametrize(("statement", "name"), [
    ("UPDATE events SET status = 'ARCHIVED' WHERE event_id = %s", "ck_events_status"),
    ("UPDATE events SET start_date = '2026-12-31', end_date = '2026-12-01'"
     " WHERE event_id = %s", "ck_events_dates"),
])
def test_event_checks(pg: psycopg.Connection, event_row: str, statement: str,
                      name: str) -> None:
    with pytest.raises(psycopg.errors.CheckViolation, match=name):
        pg.execute(statement, (event_row,))


@pytest.mark.parametrize(("column", "value", "name"), [
    ("progress", 101, "ck_jobs_progress"), ("progress", -1, "ck_jobs_progress"),
    ("status", "PAUSED", "ck_jobs_status"), ("job_type", "VIDEO", "ck_jobs_type"),
])
def test_job_checks(pg: psycopg.Connection, column: str, value: Any, name: str) -> None:
    row = {"job_type": "AI_RECOMMENDATION", "status": "PENDING", "progress": 0, column: value}
    with pytest.raises(psycopg.errors.CheckViolation, match=name):
        pg.execute("INSERT INTO jobs (job_id, event_id, job_type, status, progress, created_at,"
                   " updated_at) VALUES (%s, %s, %s, %s, %s, now(), now())",
                   (str(uuid.uuid4()), str(uuid.uuid4()), row["job_type"], row["status"],
                    row["progress"]))


def test_deleting_an_event_cascades_to_its_children_but_not_its_jobs(
        pg: psycopg.Connection, event_row: str) -> None:
    _recommendation(pg, event_row, selected=True)
    job_id = str(uuid.uuid4())
    pg.execute("INSERT INTO jobs (job_id, event_id, job_type, status, progress, created_at,"
               " updated_at) VALUES (%s, %s, 'AI_RECOMMENDATION', 'COMPLETED', 100, now(),"
               " now())", (job_id, event_row))
    pg.execute("DELETE FROM events WHERE event_id = %s", (event_row,))
    assert pg.execute("SELECT count(*) FROM ai_recommendations WHERE event_id = %s",
                      (event_row,)).fetchone() == (0,)
    assert pg.execute("SELECT status FROM jobs WHERE job_id = %s", (job_id,)).fetchone() == (
        "COMPLETED",)


# ------------------------------------------------------------------ sink semantics

def _state(version: int, name: str) -> dict[str, Any]:
    event_id = "5d1c7f0e-0000-4000-8000-000000000001"
    job = {"jobId": "5d1c7f0e-0000-4000-8000-0000000000a1", "jobType": "AI_RECOMMENDATION",
           "status": "COMPLETED" if version > 1 else "PENDING",
           "progress": 100 if version > 1 else 0, "error": None, "createdAt": 1_700_000_000_000,
           "updatedAt": 1_700_000_000_000 + version, "completedAt": None}
    return {
        "eventId": event_id, "userId": "5d1c7f0e-0000-4000-8000-0000000000b1",
        "storeId": "5d1c7f0e-0000-4000-8000-0000000000c1", "status": "DRAFT",
        "objective": "AWARENESS", "storeName": "가게", "industry": "꽃집", "address": "대전",
        "eventName": name, "description": None, "startDate": None, "endDate": None,
        "channels": ["INSTAGRAM"],
        "recommendations": recommendations() if version > 1 else [],
        "trendAnalysis": TRENDS if version > 1 else None, "images": [], "jobs": {job["jobId"]: job},
        "selectedRecommendationId": None, "selectedImageId": None, "selectedImageUrl": None,
        "distributionResults": [], "createdAt": 1_700_000_000_000,
        "updatedAt": 1_700_000_000_000 + version, "publishedAt": None, "endedAt": None,
        "version": version,
    }


@pytest.fixture
def synthetic(pg: psycopg.Connection, rds: redis.Redis) -> Iterator[None]:
    """The sink tests write states that are in no changelog: take them away afterwards."""
    yield
    state = _state(2, "")
    pg.execute("DELETE FROM events WHERE event_id = %s", (state["eventId"],))
    pg.execute("DELETE FROM jobs WHERE event_id = %s", (state["eventId"],))
    rds.delete(f"event:draft:{state['eventId']}", f"ai:recommendation:{state['eventId']}",
               f"job:status:{next(iter(state['jobs']))}", f"event:session:{state['userId']}")


def _snapshot(pg: psycopg.Connection, rds: redis.Redis, state: dict[str, Any]) -> Any:
    event_id = state["eventId"]
    return (
        pg.execute("SELECT * FROM events WHERE event_id = %s", (event_id,)).fetchall(),
        sorted(pg.execute("SELECT * FROM ai_recommendations WHERE event_id = %s",
                          (event_id,)).fetchall()),
        pg.execute("SELECT * FROM jobs WHERE event_id = %s", (event_id,)).fetchall(),
        rds.hgetall(f"event:draft:{event_id}"),
        rds.hgetall(f"job:status:{next(iter(state['jobs']))}"),
        rds.hgetall(f"ai:recommendation:{event_id}"),
    )


def _write(settings: Settings, *states: dict[str, Any]) -> None:
    async def run() -> None:
        postgres, cache = PostgresSink(settings.database_url), RedisSink(settings)
        await postgres.start()
        try:
            for state in states:
                await postgres.write([state], [], [])
                await cache.write([state], [], [])
        finally:
            await postgres.stop()
            await cache.stop()
    asyncio.run(run())


def test_replaying_the_same_states_leaves_the_stores_as_they_were(
        settings: Settings, pg: psycopg.Connection, rds: redis.Redis, synthetic: None) -> None:
    first, second = _state(1, "처음"), _state(2, "다음")
    _write(settings, first, second)
    before = _snapshot(pg, rds, second)
    assert before[0] and len(before[1]) == 3 and before[3]["version"] == "2"
    _write(settings, first, second, second)
    assert _snapshot(pg, rds, second) == before


def test_an_older_state_after_a_newer_one_changes_nothing(
        settings: Settings, pg: psycopg.Connection, rds: redis.Redis, synthetic: None) -> None:
    newer, older = _state(7, "새것"), _state(6, "옛것")
    _write(settings, newer)
    before = _snapshot(pg, rds, newer)
    _write(settings, older)
    assert _snapshot(pg, rds, newer) == before
    assert pg.execute("SELECT event_name, version FROM events WHERE event_id = %s",
                      (newer["eventId"],)).fetchone() == ("새것", 7)
    assert rds.hget(f"event:draft:{newer['eventId']}", "eventName") == "새것"


def test_a_redis_that_lost_its_scripts_still_gets_the_batch(
        settings: Settings, pg: psycopg.Connection, rds: redis.Redis, synthetic: None) -> None:
    """The sink calls its script by digest; a Redis that restarted has none (SCRIPT FLUSH
    here), and the batch is written all the same."""
    first, second = _state(1, "처음"), _state(2, "다음")
    _write(settings, first)
    rds.script_flush()
    _write(settings, second)
    assert rds.hget(f"event:draft:{second['eventId']}", "version") == "2"
    assert rds.hget(f"event:draft:{second['eventId']}", "eventName") == "다음"


def test_a_state_rewrites_only_the_children_that_changed(
        settings: Settings, pg: psycopg.Connection, rds: redis.Redis, synthetic: None) -> None:
    """A recommendation, image or job that a newer state leaves as it was is not written
    again (its row and its `updated_at` stay); a selection that moves, children that are
    replaced and a job that progresses are written, and the rows end as the state says."""
    state = _state(2, "처음")
    job_id = next(iter(state["jobs"]))
    state["images"] = [{"imageId": str(uuid.uuid4()), "imageUrl": f"/blobs/{n}.png",
                        "style": "SIMPLE", "platform": "INSTAGRAM", "jobId": job_id}
                       for n in range(2)]
    event_id = state["eventId"]

    def rows(table: str, key: str) -> dict[str, tuple[Any, ...]]:
        found = pg.execute(f"SELECT {key}::text, xmin::text, is_selected, updated_at"
                           f" FROM {table} WHERE event_id = %s", (event_id,)).fetchall()
        return {r[0]: r[1:] for r in found}

    def job() -> tuple[Any, ...] | None:
        return pg.execute("SELECT xmin::text, version, progress FROM jobs WHERE job_id = %s",
                          (job_id,)).fetchone()

    def newer(**changes: Any) -> dict[str, Any]:
        nonlocal state
        state = {**state, **changes, "version": state["version"] + 1,
                 "updatedAt": state["updatedAt"] + 1}
        _write(settings, state)
        return state

    _write(settings, state)
    recs, images, first_job = (rows("ai_recommendations", "recommendation_id"),
                               rows("generated_images", "image_id"), job())
    assert len(recs) == 3 and len(images) == 2 and first_job is not None

    # Only the event's own fields change: no child is written again.
    newer(eventName="다음")
    assert rows("ai_recommendations", "recommendation_id") == recs
    assert rows("generated_images", "image_id") == images
    assert job() == first_job
    assert pg.execute("SELECT event_name, version FROM events WHERE event_id = %s",
                      (event_id,)).fetchone() == ("다음", 3)

    # A selection: that row alone; then it moves (one selected per event all the way).
    ids = [r["recommendationId"] for r in state["recommendations"]]
    images_ids = [i["imageId"] for i in state["images"]]
    newer(selectedRecommendationId=ids[0], selectedImageId=images_ids[0],
          selectedImageUrl="/blobs/0.png")
    picked = rows("ai_recommendations", "recommendation_id")
    assert [picked[i][1] for i in ids] == [True, False, False]
    assert {i for i in ids if picked[i] != recs[i]} == {ids[0]}
    newer(selectedRecommendationId=ids[2], selectedImageId=images_ids[1],
          selectedImageUrl="/blobs/1.png")
    moved = rows("ai_recommendations", "recommendation_id")
    assert [moved[i][1] for i in ids] == [False, False, True]
    assert moved[ids[1]] == recs[ids[1]]  # never selected: never written again
    assert [rows("generated_images", "image_id")[i][1] for i in images_ids] == [False, True]

    # The job progresses: written, with the version of the state that changed it.
    progressed = {**state["jobs"][job_id], "progress": 100, "status": "COMPLETED",
                  "updatedAt": state["updatedAt"] + 1}
    newer(jobs={job_id: progressed})
    assert job()[1:] == (state["version"], 100)

    # New recommendations (a second AI job): the old rows are gone, the new ones there.
    fresh = recommendations()
    newer(recommendations=fresh, selectedRecommendationId=None)
    assert set(rows("ai_recommendations", "recommendation_id")) == {
        r["recommendationId"] for r in fresh}
    # And a replay of an older state after all of it changes nothing.
    before = _snapshot(pg, rds, state)
    _write(settings, _state(4, "옛것"))
    assert _snapshot(pg, rds, state) == before


def test_every_key_has_the_spec_name_and_its_ttl(topics: Topics, settings: Settings) -> None:
    user = str(uuid.uuid4())
    event_id = new_draft(topics, user)
    job = str(uuid.uuid4())
    topics.apply(RECOMMENDATION, event_id, user, "RecommendationRequested", {"jobId": job})
    topics.apply(RECOMMENDATION, event_id, user, "RecommendationsGenerated",
                 {"jobId": job, "trendAnalysis": TRENDS, "recommendations": recommendations()})
    expected = {
        f"event:draft:{event_id}": settings.ttl_draft_seconds,
        f"event:session:{user}": settings.ttl_session_seconds,
        f"job:status:{job}": settings.ttl_job_seconds,
        f"ai:recommendation:{event_id}": settings.ttl_recommendation_seconds,
    }
    for key, ttl in expected.items():
        assert 0 < topics.rds.ttl(key) <= ttl, key
    assert (settings.ttl_draft_seconds, settings.ttl_session_seconds, settings.ttl_job_seconds,
            settings.ttl_recommendation_seconds) == (1800, 3600, 3600, 86400)


# ------------------------------------------------------------------ check and rebuild

def test_check_finds_a_tampered_projection_and_rebuild_restores_it(
        topics: Topics, pg: psycopg.Connection) -> None:
    user = str(uuid.uuid4())
    event_id = new_draft(topics, user)
    topics.apply(PURPOSE, event_id, user, "DraftUpdated", {
        "eventName": "원본", "description": None, "startDate": date(2026, 12, 1),
        "endDate": None, "channels": None})
    pg.execute("UPDATE events SET version = 1 WHERE event_id = %s", (event_id,))
    topics.rds.delete(f"event:draft:{event_id}")
    found = eventpipe("projections", "check")
    assert found.returncode == 1
    assert f"postgres events {event_id}" in found.stdout
    # Written a moment ago with a TTL of 30 minutes: a missing key is lost, not expired.
    assert f"redis event:draft:{event_id}: missing within its TTL" in found.stdout

    rebuilt = eventpipe("projections", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert eventpipe("projections", "check").stdout.strip().endswith("0 differences")
    assert pg.execute("SELECT event_name, version FROM events WHERE event_id = %s",
                      (event_id,)).fetchone() == ("원본", 2)
    assert topics.event(event_id)["eventName"] == "원본"


@pytest.mark.parametrize("command", ["check", "rebuild"])
def test_check_and_rebuild_of_an_app_without_a_changelog_change_nothing(
        command: str, process_env: dict[str, str], settings: Settings,
        pg: psycopg.Connection, rds: redis.Redis, event_row: str) -> None:
    """A mistyped APP_ID: a clear error, no changelog made for it (a consumer naming the
    topic would have the broker auto-create it, uncompacted), and for a rebuild neither store
    emptied (a row and a key that no changelog has stay)."""
    app_id = f"no-such-app-{uuid.uuid4().hex[:8]}"
    key = f"event:draft:{event_row}"
    rds.hset(key, mapping={"status": "DRAFT", "version": "1"})
    rds.expire(key, 600)
    done = subprocess.run([sys.executable, "-m", "eventpipe.cli", "projections", command],
                          env=dict(process_env, APP_ID=app_id), capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"the changelog {app_id}-events-changelog does not exist" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    assert f"{app_id}-events-changelog" not in admin.list_topics(timeout=30).topics
    assert pg.execute("SELECT version FROM events WHERE event_id = %s",
                      (event_row,)).fetchone() == (1,)
    assert rds.hget(key, "status") == "DRAFT"
    rds.delete(key)


def test_the_apis_postgresql_read_path_shows_the_redis_document_children_in_order(
        settings: Settings, pg: psycopg.Connection, rds: redis.Redis, client: httpx.Client,
        auth: dict[str, str], user_id: str, synthetic: None) -> None:
    """Recommendations and images as the state lists them (not by id), selections, dates,
    jobs and timestamps: the document from the rows is the document from the state."""
    state = _state(3, "전체")
    recs = sorted(state["recommendations"], key=lambda r: r["recommendationId"], reverse=True)
    images = sorted(({"imageId": str(uuid.uuid4()), "imageUrl": f"/blobs/{n}.png",
                      "style": "SIMPLE", "platform": "INSTAGRAM",
                      "jobId": next(iter(state["jobs"]))} for n in range(3)),
                    key=lambda i: i["imageId"], reverse=True)
    state.update(userId=user_id, recommendations=recs, images=images,
                 selectedRecommendationId=recs[1]["recommendationId"],
                 selectedImageId=images[2]["imageId"], selectedImageUrl=images[2]["imageUrl"],
                 startDate="2026-12-01", endDate="2026-12-31", description="설명",
                 updatedAt=1_700_000_000_123)
    _write(settings, state)
    key = f"event:draft:{state['eventId']}"
    from_redis = json.loads(rds.hget(key, "doc"))
    assert [r["recommendationId"] for r in from_redis["recommendations"]] == [
        r["recommendationId"] for r in recs]
    rds.delete(key)  # a miss: the API reads PostgreSQL
    from_postgres = client.get(f"/api/events/{state['eventId']}", headers=auth)
    assert from_postgres.status_code == 200
    assert from_postgres.json() == from_redis
