"""Open-loop HTTP load at a fixed rate, in its own process (the API must not share its loop):

    python -m bench.loadgen SPEC.json

SPEC: {"method", "url", "paths": [...], "body": {...} | null, "token", "rate", "seconds",
"ok": [statuses]}. Request i is due at start + i/rate whatever the answers before it, and
its latency counts from when it was due, so a slow server cannot hide its queue
(no coordinated omission). Prints one JSON line with the percentiles in milliseconds.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import aiohttp

__all__ = ["run"]


def _pct(sorted_ms: list[float], p: float) -> float:
    if not sorted_ms:
        return float("nan")
    return sorted_ms[min(len(sorted_ms) - 1, int(p / 100 * len(sorted_ms)))]


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    rate, seconds = float(spec["rate"]), float(spec["seconds"])
    total = int(rate * seconds)
    headers = {"Authorization": f"Bearer {spec['token']}"}
    ok = set(spec.get("ok", [200]))
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors = 0
    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(spec["url"], headers=headers, connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=10)) as session:

        async def one(i: int, due: float) -> None:
            nonlocal errors
            path = spec["paths"][i % len(spec["paths"])]
            try:
                async with session.request(spec["method"], path, json=spec.get("body")) as r:
                    await r.read()
                    statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
                    if r.status not in ok:
                        errors += 1
            except (aiohttp.ClientError, TimeoutError):
                errors += 1
                statuses["error"] = statuses.get("error", 0) + 1
            latencies.append((time.perf_counter() - due) * 1000)

        start = time.perf_counter() + 0.2
        tasks = []
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, due)))
        await asyncio.gather(*tasks)
        took = time.perf_counter() - start
    latencies.sort()
    return {"requests": total, "seconds": took, "achieved_rate": total / took,
            "errors": errors, "statuses": statuses,
            "p50": _pct(latencies, 50), "p95": _pct(latencies, 95), "p99": _pct(latencies, 99),
            "max": latencies[-1] if latencies else float("nan")}


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(json.dumps(asyncio.run(run(json.load(f)))), flush=True)
