"""Constant-rate HTTP load from vegeta, a compiled open-loop load generator in its own process.

A Python client's own pauses (thousands of pending tasks, its GC) land in the figures as
hundreds of ms at p99; vegeta sends each request at its due time whatever the answers
before it, from goroutines, so a slow server cannot hide its queue and the client adds
microseconds. `make bench` installs it into `bench/.bin` (`go install`, a pinned version).

    attack(name, targets, rate, seconds) -> {"requests", "achieved_rate", "p50", ...}

Each run's raw results stay in bench/data/<name>.bin (`bench/.bin/vegeta report` reads them);
`results(name)` decodes them one request a line (timestamp, latency, status, headers, body).
"""

from __future__ import annotations

import base64
import json
import math
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.procs import ROOT

__all__ = ["PERCENTILES", "VEGETA", "Target", "attack", "distribution", "ensure_vegeta",
           "results"]

VEGETA_MODULE = "github.com/tsenart/vegeta/v12@v12.13.0"
BIN = ROOT / "bench" / ".bin"
VEGETA = BIN / "vegeta"
DATA = ROOT / "bench" / "data"
TIMEOUT_SECONDS = 10  # a request unanswered this long counts as an error


@dataclass(frozen=True)
class Target:
    method: str
    url: str
    token: str | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def line(self) -> str:
        header = {k: [v] for k, v in self.headers.items()}
        if self.token:
            header["Authorization"] = [f"Bearer {self.token}"]
        target: dict[str, Any] = {"method": self.method, "url": self.url, "header": header}
        if self.body is not None:
            header["Content-Type"] = ["application/json"]
            target["body"] = base64.b64encode(json.dumps(self.body).encode()).decode()
        return json.dumps(target)


def ensure_vegeta() -> Path:
    """vegeta in bench/.bin, installed with the Go toolchain if it is not there yet."""
    if VEGETA.exists():
        return VEGETA
    go = shutil.which("go") or "/usr/local/go/bin/go"
    BIN.mkdir(parents=True, exist_ok=True)
    subprocess.run([go, "install", VEGETA_MODULE], env={**os.environ, "GOBIN": str(BIN)},
                   check=True, timeout=900)
    return VEGETA


def attack(name: str, targets: list[Target], rate: int, seconds: float) -> dict[str, Any]:
    """`rate` requests a second for `seconds`, round robin over `targets`; the summary."""
    vegeta = ensure_vegeta()
    DATA.mkdir(parents=True, exist_ok=True)
    spec, out = DATA / f"{name}.targets", DATA / f"{name}.bin"
    spec.write_text("\n".join(t.line() for t in targets) + "\n")
    with out.open("wb") as sink:
        subprocess.run([str(vegeta), "attack", "-format=json", f"-targets={spec}",
                        f"-rate={rate}/1s", f"-duration={seconds}s",
                        f"-timeout={TIMEOUT_SECONDS}s", "-keepalive=true"],
                       stdout=sink, check=True, timeout=seconds + TIMEOUT_SECONDS + 60)
    report = json.loads(subprocess.run([str(vegeta), "report", "-type=json", str(out)],
                                       capture_output=True, text=True, check=True).stdout)
    lat = report["latencies"]
    statuses = {("error" if code == "0" else code): n
                for code, n in report["status_codes"].items()}
    ok = statuses.get("200", 0) + statuses.get("201", 0) + statuses.get("204", 0)
    return {"requests": report["requests"], "seconds": report["duration"] / 1e9,
            "achieved_rate": report["rate"], "errors": report["requests"] - ok,
            "statuses": statuses, "p50": lat["50th"] / 1e6, "p95": lat["95th"] / 1e6,
            "p99": lat["99th"] / 1e6, "max": lat["max"] / 1e6,
            "distribution": distribution(name)}


# The latency at each of these percentiles is kept per request (results.json), for the
# latency chart: the whole curve, not only p50/p95/p99.
PERCENTILES = (0, 1, 5, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 100)


def distribution(name: str) -> dict[str, list[float]]:
    """{"percentiles": PERCENTILES, "ms": the latency at each} over every request of `name`
    (nearest rank)."""
    latencies = sorted(r["latency"] for r in results(name))
    if not latencies:
        return {"percentiles": [], "ms": []}
    n = len(latencies)
    ranks = [min(n - 1, max(0, math.ceil(p / 100 * n) - 1)) for p in PERCENTILES]
    return {"percentiles": list(PERCENTILES), "ms": [latencies[i] / 1e6 for i in ranks]}


def results(name: str) -> list[dict[str, Any]]:
    """Every request of run `name`: timestamp (RFC 3339), latency (ns), code, headers, body
    (base64), as vegeta encodes them."""
    out = subprocess.run([str(VEGETA), "encode", "--to", "json", str(DATA / f"{name}.bin")],
                         capture_output=True, text=True, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]
