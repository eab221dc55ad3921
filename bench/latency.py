"""Command and query latency through a real API process and worker, load from its own process.

1. POST /api/events/purposes at a fixed rate: answered 201 with the DRAFT only after the
   command went through Kafka, the worker and the projector (read-your-writes).
2. GET /api/events/{id} and GET /api/events/jobs/{jobId}/status at a fixed rate, over drafts
   and jobs made beforehand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.procs import ROOT, Isolated, Proc, wait_until
from eventpipe.settings import Settings

__all__ = ["API_PORT", "measure"]

API_PORT = 8390
BODY = {"objective": "신규 고객 유치", "storeName": "맛있는집", "industry": "음식점",
        "address": "서울시 강남구"}
READ_TARGETS = 200  # drafts (and as many jobs) the queries cycle over


def _load(spec: dict[str, Any]) -> dict[str, Any]:
    path = ROOT / "bench" / "data" / "loadgen.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec))
    out = subprocess.run([sys.executable, "-m", "bench.loadgen", str(path)], cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                         text=True, check=True, timeout=spec["seconds"] + 120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(rate: int, seconds: int, query_rate: int) -> dict[str, Any]:
    from api.auth import issue_token

    iso = Isolated("api", 4, 6396, {"TABLE_STORE": "rocksdb://", "TOPIC_PARTITIONS": "2",
                                    "API_PORT": str(API_PORT)})
    iso.reset_stores()
    env = iso.env()
    Path(env["DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    worker = Proc("latency-worker", ["-m", "eventpipe.cli", "worker"], env).start()
    api = Proc("latency-api", ["-m", "eventpipe.cli", "api", "--port", str(API_PORT)],
               env).start()
    url = f"http://127.0.0.1:{API_PORT}"
    user = str(uuid.uuid4())
    token = issue_token(Settings(), user, 7200)
    auth = {"Authorization": f"Bearer {token}"}
    try:
        wait_until("API ready", lambda: _ready(url), 120, api)
        wait_until("worker ready", lambda: worker.log_has("[^Worker]: Ready"), 180, worker)
        with httpx.Client(base_url=url, headers=auth, timeout=30) as client:
            # Warm up (first schema lookups, pools) and make what the queries will read.
            drafts = [_settled(client, "/api/events/purposes", BODY)["eventId"]
                      for _ in range(READ_TARGETS)]
            jobs = [_settled(client, f"/api/events/{d}/ai-recommendations")["jobId"]
                    for d in drafts]
        command = _load({"method": "POST", "url": url, "paths": ["/api/events/purposes"],
                         "body": BODY, "token": token, "rate": rate, "seconds": seconds,
                         "ok": [201]})
        base = {"method": "GET", "url": url, "token": token, "rate": query_rate,
                "seconds": seconds, "ok": [200]}
        event = _load({**base, "paths": [f"/api/events/{d}" for d in drafts]})
        job = _load({**base, "paths": [f"/api/events/jobs/{j}/status" for j in jobs]})
        rss = {"worker": worker.peak_rss_mb(), "api": api.peak_rss_mb()}
    finally:
        api.stop()
        worker.stop()
    return {"command": command, "get_event": event, "get_job": job, "peak_rss_mb": rss}


def _settled(client: httpx.Client, path: str, body: Any = None) -> dict[str, Any]:
    """POST, and when the API's wait ran out (202 with a commandId: a worker just started
    can take longer), wait for the command's outcome; the answer, with `eventId`."""
    answer = client.post(path, json=body)
    data: dict[str, Any] = answer.json()
    if answer.status_code == 202 and "commandId" in data:
        wait_until(f"outcome of {path}", lambda: client.get(
            f"/api/events/commands/{data['commandId']}").status_code == 200, 60)
    elif answer.status_code == 201:
        data["eventId"] = data["eventDraftId"]
    else:
        answer.raise_for_status()
    return data


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
