"""Issue 6: the whole flow through the API alone, with the three collaborator workers running
as processes on the real stack (Kafka, registry, PostgreSQL, Redis), as `make run` runs them.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import psycopg
import pytest
from PIL import Image

from eventpipe.settings import Settings
from streams.codec import register_codecs
from streams.topics import RECOMMENDATION
from tests.conftest import ROOT, Process, _free_port, _wait
from tests.kafka_helpers import read_records, window_start

WORKERS = {"ai": "ai-worker", "content": "content-worker", "distribution": "distribution-worker"}
STORE = {"objective": "매출 증대", "storeName": "해피카페", "industry": "카페",
         "address": "부산시 해운대구"}
STYLES, PLATFORMS = ["SIMPLE", "FANCY"], ["INSTAGRAM", "GENIE_TV"]
CHANNELS = ["URIDONGNE_TV", "INSTAGRAM", "KAKAO_CHANNEL"]


def start(name: str, command: str, env: dict[str, str]) -> Process:
    proc = Process(name, [command], env)
    proc.log.unlink(missing_ok=True)
    proc.start()
    _wait(name, lambda: " ready: " in proc.log.read_text(), 90, proc.proc, proc.log)
    return proc


@pytest.fixture(scope="module")
def worker_env(process_env: dict[str, str], api_url: str) -> dict[str, str]:
    return {**process_env, "PUBLIC_BASE_URL": api_url}


@pytest.fixture(scope="module")
def collaborators(worker_env: dict[str, str]) -> Iterator[dict[str, Process]]:
    """The three workers, started for this module only: other modules answer jobs by hand."""
    procs = {key: start(f"test-{command}", command, worker_env)
             for key, command in WORKERS.items()}
    yield procs
    for proc in procs.values():
        proc.stop()


def wait_for(what: str, probe: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


def follow_job(client: httpx.Client, auth: dict[str, str], job_id: str,
               timeout: float = 60.0) -> dict[str, Any]:
    """Poll the job as the app does; every answer on the way must be well formed."""
    seen: list[str] = []

    def finished() -> dict[str, Any] | None:
        r = client.get(f"/api/events/jobs/{job_id}/status", headers=auth)
        assert r.status_code == 200, r.text
        body = r.json()
        seen.append(body["status"])
        return body if body["status"] in ("COMPLETED", "FAILED") else None

    body = wait_for(f"job {job_id}", finished, timeout)
    order = ["PENDING", "PROCESSING", "COMPLETED", "FAILED"]
    assert [order.index(s) for s in seen] == sorted(order.index(s) for s in seen)
    return body


def new_draft(client: httpx.Client, auth: dict[str, str]) -> str:
    r = client.post("/api/events/purposes", json=STORE, headers=auth)
    assert r.status_code == 201, r.text
    return r.json()["eventDraftId"]


def ready_event(client: httpx.Client, auth: dict[str, str]) -> tuple[str, dict[str, Any],
                                                                       dict[str, Any]]:
    """A draft with a generated recommendation and image selected, dates and channels set."""
    event_id = new_draft(client, auth)
    r = client.post(f"/api/events/{event_id}/ai-recommendations", json={}, headers=auth)
    assert r.status_code == 202 and r.json()["status"] == "PENDING", r.text
    recs = follow_job(client, auth, r.json()["jobId"])
    assert recs["status"] == "COMPLETED", recs
    r = client.put(f"/api/events/{event_id}/recommendations", headers=auth,
                   json={"recommendationId": recs["recommendations"][0]["recommendationId"]})
    assert r.status_code == 200, r.text
    r = client.post(f"/api/events/{event_id}/content-generation", headers=auth,
                    json={"styles": STYLES, "platforms": PLATFORMS})
    assert r.status_code == 202, r.text
    images = follow_job(client, auth, r.json()["jobId"])
    assert images["status"] == "COMPLETED", images
    r = client.put(f"/api/events/{event_id}/images/{images['images'][0]['imageId']}/select",
                   headers=auth)
    assert r.status_code == 200, r.text
    r = client.patch(f"/api/events/{event_id}", headers=auth, json={
        "startDate": "2026-12-01", "endDate": "2026-12-24", "channels": CHANNELS})
    assert r.status_code == 200, r.text
    return event_id, recs, images


def delivered(client: httpx.Client, auth: dict[str, str], event_id: str) -> list[dict[str, Any]]:
    def reported() -> list[dict[str, Any]] | None:
        results = client.get(f"/api/events/{event_id}", headers=auth).json()["distributionResults"]
        return results if results and all(r["status"] != "PENDING" for r in results) else None

    return wait_for(f"distribution of {event_id}", reported)


def test_purpose_to_published_through_the_api_alone(
        collaborators: dict[str, Process], client: httpx.Client, auth: dict[str, str],
        pg: psycopg.Connection) -> None:
    event_id, recs, images = ready_event(client, auth)

    # Three recommendations, low to high cost, every field of the card and the ERD filled.
    assert len(recs["recommendations"]) == 3
    for rec in recs["recommendations"]:
        assert all(str(rec[k]).strip() for k in ("title", "prize", "method", "cost", "roi",
                                                 "promotionType", "targetAudience",
                                                 "description")), rec
    assert set(recs["trendAnalysis"]) == {"industryTrends", "regionalTrends", "seasonalTrends"}

    # One real PNG per (style, platform), fetched by its URL alone, sized for its platform.
    pairs = Counter((i["style"], i["platform"]) for i in images["images"])
    assert pairs == Counter((s, p) for s in STYLES for p in PLATFORMS)
    for image in images["images"]:
        r = httpx.get(image["imageUrl"], timeout=10)  # no token: the signed URL is the key
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(r.content)) as png:
            assert png.format == "PNG"
            width, height = png.size
        if image["platform"] == "INSTAGRAM":
            assert width == height
        else:
            assert width * 9 == height * 16, (image["platform"], png.size)

    r = client.post(f"/api/events/{event_id}/publish", json={}, headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "PUBLISHED"
    assert [x["channel"] for x in r.json()["distributionResults"]] == CHANNELS

    results = delivered(client, auth, event_id)
    assert [(x["channel"], x["status"]) for x in results] == [(c, "SUCCESS") for c in CHANNELS]
    logged = pg.execute("SELECT channel, status FROM distribution_log WHERE event_id = %s",
                        (event_id,)).fetchall()
    assert Counter(logged) == Counter((c, "SUCCESS") for c in CHANNELS)
    event = client.get(f"/api/events/{event_id}", headers=auth).json()
    assert event["status"] == "PUBLISHED"
    assert event["selectedImageUrl"] == images["images"][0]["imageUrl"]


def test_stopped_ai_worker_job_fails_by_timeout_with_the_seed_body(
        collaborators: dict[str, Process], worker_env: dict[str, str], client: httpx.Client,
        auth: dict[str, str], settings: Settings) -> None:
    since = window_start()
    ai = collaborators["ai"]
    ai.stop()
    try:
        event_id = new_draft(client, auth)
        r = client.post(f"/api/events/{event_id}/ai-recommendations", json={}, headers=auth)
        job_id = r.json()["jobId"]
        first = client.get(f"/api/events/jobs/{job_id}/status", headers=auth).json()
        assert first == {"jobId": job_id, "jobType": "AI_RECOMMENDATION", "status": "PENDING",
                         "progress": 0, "message": "AI가 분석 중입니다"}
        # The suite's pipeline times jobs out after 15 s (JOB_TIMEOUT_SECONDS).
        body = follow_job(client, auth, job_id, timeout=60)
        assert body == {"jobId": job_id, "jobType": "AI_RECOMMENDATION", "status": "FAILED",
                        "progress": 0, "error": "TIMEOUT: not finished within 15 s",
                        "message": "다시 시도해주세요"}
    finally:
        collaborators["ai"] = start("test-ai-worker", "ai-worker", worker_env)
    # The worker, back, skips the expired job (its log says so: the wait's sentinel) and
    # reports nothing for it: the only report on the topic is the job timer's failure.
    restarted = collaborators["ai"]
    wait_for("the expired job skipped",
             lambda: f"skipping job of event {event_id}" in restarted.log.read_text())
    codec = register_codecs(settings.schema_registry_url)[RECOMMENDATION.name]
    reports = [codec.read(r.value)["payload"] for r in read_records(
        settings, RECOMMENDATION.name, since) if r.key == event_id.encode()]
    assert [(name.rsplit(".", 1)[-1], body.get("error")) for name, body in reports] == [
        ("RecommendationRequested", None),
        ("RecommendationJobFailed", "TIMEOUT: not finished within 15 s")], reports
    again = client.get(f"/api/events/jobs/{job_id}/status", headers=auth).json()
    assert again["status"] == "FAILED"


class DistributionService(BaseHTTPRequestHandler):
    """Stands in for the external Distribution Service: one channel is down."""

    failing: ClassVar[str] = "INSTAGRAM"
    calls: ClassVar[Counter[str]] = Counter()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        channel = body["channels"][0]
        self.calls[channel] += 1
        if channel == self.failing:
            self.send_response(503)
            self.end_headers()
            return
        answer = json.dumps({"distributionId": body["eventId"], "channelResults": [
            {"channel": channel, "success": True}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def distribution_service() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), DistributionService)
    DistributionService.calls.clear()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_failing_channel_opens_its_circuit_while_the_others_deliver(
        collaborators: dict[str, Process], worker_env: dict[str, str], client: httpx.Client,
        auth: dict[str, str], distribution_service: str) -> None:
    collaborators["distribution"].stop()
    http = start("test-distribution-http", "distribution-worker", {
        **worker_env, "DISTRIBUTION_ADAPTER": "http",
        "DISTRIBUTION_SERVICE_URL": distribution_service, "DISTRIBUTION_ATTEMPTS": "2",
        "BREAKER_FAILURE_THRESHOLD": "2", "BREAKER_RECOVERY_SECONDS": "600"})
    try:
        outcomes = []
        for _ in range(3):
            event_id, _, _ = ready_event(client, auth)
            r = client.post(f"/api/events/{event_id}/publish", json={}, headers=auth)
            assert r.status_code == 200, r.text
            outcomes.append({x["channel"]: x for x in delivered(client, auth, event_id)})
    finally:
        http.stop()
        collaborators["distribution"] = start("test-distribution-worker", "distribution-worker",
                                              worker_env)
    for results in outcomes:  # the others deliver every time
        assert all(results[c]["status"] == "SUCCESS" for c in CHANNELS if c != "INSTAGRAM")
        assert results["INSTAGRAM"]["status"] == "FAILED"
    # Two deliveries failed (two attempts each), then the circuit was open: no third call.
    assert "circuit" not in (outcomes[0]["INSTAGRAM"]["message"] or "").lower()
    assert "circuit" in outcomes[2]["INSTAGRAM"]["message"].lower()
    assert DistributionService.calls["INSTAGRAM"] == 2 * 2
    assert DistributionService.calls["URIDONGNE_TV"] == 3


def _demo(api_url: str, env: dict[str, str]) -> str:
    result = subprocess.run([sys.executable, "-m", "eventpipe.cli", "demo", "--api-url", api_url,
                             "--job-seconds", "60"],
                            env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_demo_follows_commands_answered_202(collaborators: dict[str, Process],
                                            worker_env: dict[str, str]) -> None:
    """Right after `make run` the API can be ready before the worker, and a command then
    answers 202; the demo follows it to its outcome (it once failed on the first step)."""
    port = _free_port()
    api = Process("test-api-202", ["api", "--port", str(port)],
                  {**worker_env, "COMMAND_WAIT_SECONDS": "0"})  # every command answers 202
    api.log.unlink(missing_ok=True)
    api.start()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait("API", lambda: httpx.get(f"{url}/health/ready", timeout=3).status_code == 200, 90,
              api.proc, api.log)
        out = _demo(url, worker_env)
        assert "PUBLISHED" in out and "done" in out, out[-3000:]
        assert '"POST /api/events/purposes HTTP/1.1" 202' in api.log.read_text()
    finally:
        api.stop()


def test_demo_runs_to_the_end(collaborators: dict[str, Process], worker_env: dict[str, str],
                              api_url: str) -> None:
    out = _demo(api_url, worker_env)
    for step in ("1. 목적 선택", "2. AI 추천 요청", "4. 이미지 생성 요청", "7. 배포", "PUBLISHED",
                 "채널별 배포 결과", "done"):
        assert step in out, out[-3000:]
    assert out.count("SUCCESS") == 3
