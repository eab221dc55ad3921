"""Command and query latency through a real API process and worker, load from vegeta.

1. POST /api/events/purposes at a fixed rate: answered 201 with the DRAFT only after the
   command went through Kafka, the worker and the projector (read-your-writes); each 201
   followed hop by hop (bench/hops.py).
2. GET of a bare FastAPI route (bench/bare.py, same uvicorn set-up) at the query rate: the
   floor the API's reads are judged against, in the same run.
3. GET /api/events/{id} and GET /api/events/jobs/{jobId}/status at the query rate, over
   drafts and jobs made beforehand. For 2 and 3 the serving process's CPU time per request
   (utime + stime) is kept too (`cpu_us_per_request` in results.json).
4. Past capacity: GET event at twice the query rate, and the list (GET /api/events, from
   PostgreSQL) at the query rate: what the API answers when asked for more than it can do
   (429 with Retry-After, not a queue).

The load comes from vegeta (bench/loadgen.py), a compiled open-loop generator in its own
process.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.hops import Announcements, hop_table
from bench.loadgen import Target, attack, ensure_vegeta, results
from bench.procs import Isolated, Proc, wait_until
from eventpipe.settings import Settings
from sinks.redis import OUTCOME_CHANNEL
from streams.admin import EVENTS_TABLE
from streams.topics import OUTCOME, PURPOSE, changelog_topic

__all__ = ["API_PORT", "BARE_PORT", "measure"]

API_PORT = 8390
BARE_PORT = 8391
BODY = {"objective": "신규 고객 유치", "storeName": "맛있는집", "industry": "음식점",
        "address": "서울시 강남구"}
READ_TARGETS = 200  # drafts (and as many jobs) the queries cycle over
OVERLOAD = 2  # the overload step asks this many times the query rate


def measure(rate: int, seconds: int, query_rate: int) -> dict[str, Any]:
    from api.auth import issue_token

    ensure_vegeta()
    iso = Isolated("api", 4, 6396, {"TABLE_STORE": "rocksdb://", "TOPIC_PARTITIONS": "2",
                                    "API_PORT": str(API_PORT)})
    iso.reset_stores()
    env = iso.env()
    worker = Proc("latency-worker", ["-m", "eventpipe.cli", "worker"], env).start()
    api = Proc("latency-api", ["-m", "eventpipe.cli", "api", "--port", str(API_PORT)],
               env).start()
    bare = Proc("latency-bare", ["-m", "bench.bare", "--port", str(BARE_PORT)], env).start()
    url = f"http://127.0.0.1:{API_PORT}"
    user = str(uuid.uuid4())
    token = issue_token(Settings(), user, 7200)
    auth = {"Authorization": f"Bearer {token}"}
    try:
        wait_until("API ready", lambda: _ready(url), 120, api)
        wait_until("bare route", lambda: _ready(f"http://127.0.0.1:{BARE_PORT}", "/bare"),
                   60, bare)
        wait_until("worker ready", lambda: worker.log_has("[^Worker]: Ready"), 180, worker)
        with httpx.Client(base_url=url, headers=auth, timeout=30) as client:
            # Warm up (first schema lookups, pools) and make what the queries will read.
            drafts = [_settled(client, "/api/events/purposes", BODY)["eventId"]
                      for _ in range(READ_TARGETS)]
            jobs = [_settled(client, f"/api/events/{d}/ai-recommendations")["jobId"]
                    for d in drafts]
        post = [Target("POST", f"{url}/api/events/purposes", token, BODY)]
        with Announcements(env["REDIS_URL"], OUTCOME_CHANNEL) as announced:
            command = attack("latency-post", post, rate, seconds)
            hops = hop_table(results("latency-post"), announced,
                             os.environ["KAFKA_BOOTSTRAP_SERVERS"], PURPOSE.name,
                             changelog_topic(env["APP_ID"], EVENTS_TABLE), OUTCOME.name)
        events = [Target("GET", f"{url}/api/events/{d}", token) for d in drafts]
        floor = _costed(bare, "latency-bare",
                        [Target("GET", f"http://127.0.0.1:{BARE_PORT}/bare")], query_rate,
                        seconds)
        event = _costed(api, "latency-event", events, query_rate, seconds)
        job = _costed(api, "latency-job", [Target("GET", f"{url}/api/events/jobs/{j}/status",
                                                  token) for j in jobs], query_rate, seconds)
        short = max(5, seconds // 3)
        overload = attack("latency-event-2x", events, OVERLOAD * query_rate, short)
        listing = attack("latency-list", [Target("GET", f"{url}/api/events?size=20", token)],
                         query_rate, short)
        rss = {"worker": worker.peak_rss_mb(), "api": api.peak_rss_mb()}
    finally:
        bare.stop()
        api.stop()
        worker.stop()
    return {"command": command, "hops": hops, "bare": floor, "get_event": event,
            "get_job": job, "get_event_overload": overload, "get_list": listing,
            "overload_seconds": short, "peak_rss_mb": rss}


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _costed(server: Proc, name: str, targets: list[Target], rate: int,
            seconds: int) -> dict[str, Any]:
    """`attack`, plus the CPU time the serving process spent per request meanwhile
    (`cpu_us_per_request`): steadier than the tails on a shared machine."""
    before = _cpu_seconds(server.pid)
    summary = attack(name, targets, rate, seconds)
    spent = _cpu_seconds(server.pid) - before
    summary["cpu_us_per_request"] = spent * 1e6 / max(1, summary["requests"])
    return summary


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


def _ready(url: str, path: str = "/health/ready") -> bool:
    try:
        return httpx.get(f"{url}{path}", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
