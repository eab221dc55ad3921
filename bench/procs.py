"""The processes a benchmark runs (worker, API, load, peers): start, wait, stop, peak RSS.

Each run gets its own application id, data dir, PostgreSQL schema and Redis database, so
runs in one benchmark never read each other's state.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

__all__ = ["ROOT", "Isolated", "Proc", "wait_until"]

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / "bench" / "logs"


def wait_until(what: str, ready: Callable[[], bool], timeout: float,
               proc: Proc | None = None, poll: float = 0.2) -> float:
    """Poll until `ready()`; returns the monotonic time it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return time.monotonic()
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited while waiting for {what}; see {proc.log}")
        time.sleep(poll)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s")


@dataclass
class Isolated:
    """One run's own app id, data dir, PostgreSQL schema, Redis database and ports."""

    name: str
    redis_db: int
    web_port: int
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def schema(self) -> str:
        return f"bench_{self.name}"

    @property
    def database_url(self) -> str:
        return f"{os.environ['DATABASE_URL']}?options=-csearch_path%3D{self.schema}"

    def env(self) -> dict[str, str]:
        base = os.environ["REDIS_URL"].rsplit("/", 1)[0]
        return {
            **os.environ,
            "APP_ID": f"bench-{self.name}",
            "DATA_DIR": str(ROOT / "bench" / "data" / self.name),
            "DATABASE_URL": self.database_url,
            "REDIS_URL": f"{base}/{self.redis_db}",
            "WORKER_WEB_PORT": str(self.web_port),
            "PYTHONPATH": str(ROOT),
            **self.extra,
        }

    def reset_stores(self) -> None:
        """An empty data dir, PostgreSQL schema and Redis database (the worker migrates)."""
        import redis

        shutil.rmtree(self.env()["DATA_DIR"], ignore_errors=True)
        Path(self.env()["DATA_DIR"]).mkdir(parents=True)
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
            schema = sql.Identifier(self.schema)
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(schema))
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
        redis.Redis.from_url(self.env()["REDIS_URL"]).flushdb()


class Proc:
    """A child process with its output in bench/logs/<name>.log."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str],
                 python: str = sys.executable) -> None:
        self.name = name
        self.argv = [python, *argv]
        self.env = env
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log = LOGS / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def start(self) -> Proc:
        out = self.log.open("ab")
        self.started = time.monotonic()
        self.popen = subprocess.Popen(self.argv, env=self.env, cwd=ROOT, stdout=out,
                                      stderr=subprocess.STDOUT)
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_has(self, text: str) -> bool:
        return self.log.exists() and text in self.log.read_text(errors="replace")

    def peak_rss_mb(self) -> float:
        """The kernel's high-water mark of resident memory (VmHWM), in MiB, of the process
        and its children (a worker's projector process)."""
        return _peak_rss_mb(self.pid)

    def stop(self, timeout: float = 30.0, kill: bool = False) -> int | None:
        if self.popen is None or self.popen.poll() is not None:
            return None if self.popen is None else self.popen.returncode
        self.popen.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait(10)


def _peak_rss_mb(pid: int) -> float:
    try:
        proc = Path(f"/proc/{pid}")
        peak = next(int(line.split()[1]) / 1024 for line in
                    (proc / "status").read_text().splitlines() if line.startswith("VmHWM:"))
        children = (proc / "task" / str(pid) / "children").read_text().split()
    except (FileNotFoundError, ProcessLookupError, StopIteration):
        return float("nan")
    return peak + sum(r for c in children if not math.isnan(r := _peak_rss_mb(int(c))))
