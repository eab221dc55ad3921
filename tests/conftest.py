"""Fixtures: the real stack (started by `make test` through stack/stack.sh), plus a stream
worker and an API started here as subprocesses on free ports, exactly as `make run` runs them.
"""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

from api.auth import issue_token
from eventpipe.settings import Settings
from sinks.migrate import migrate
from tests.pipeline import Topics

ROOT = Path(__file__).resolve().parent.parent
# STACK_DIR: a second stack (stack.sh's knob) keeps its worker's files and logs apart.
STACK = Path(os.environ.get("STACK_DIR") or ROOT / ".stack")
LOGS = STACK / "logs"
WORKER_READY = "[^Worker]: Ready"  # Faust logs it once agents, tables and partitions are up


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, ready: callable, timeout: float, proc: subprocess.Popen | None = None,
          log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{tail}")
        try:
            if ready():
                return
        except Exception:
            pass
        time.sleep(0.25)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} not ready after {timeout:.0f}s:\n{tail}")


class Process:
    """A pipeline process of ours, logging to .stack/logs/<name>.log."""

    def __init__(self, name: str, args: list[str], env: dict[str, str]) -> None:
        LOGS.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.args = args
        self.env = env
        self.log = LOGS / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "eventpipe.cli", *self.args],
                                     env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                     cwd=ROOT)

    def restart(self, ready_marker: str, timeout: float = 180, sig_kill: bool = False) -> None:
        """Stop, start again, and wait for `ready_marker` in the new part of the log."""
        self.stop(sig_kill=sig_kill)
        offset = self.log.stat().st_size if self.log.exists() else 0
        self.start()

        def ready() -> bool:
            with self.log.open("rb") as f:
                f.seek(offset)
                return ready_marker.encode() in f.read()

        _wait(self.name, ready, timeout, self.proc, self.log)

    def stop(self, sig_kill: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            if sig_kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session", autouse=True)
def one_session_per_stack() -> Iterator[None]:
    """Two pytest sessions on one stack would split the pipeline's consumer groups between
    their workers; the second waits for the first instead."""
    lock = (STACK / "pytest.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"\nanother test session holds {lock}; waiting for it", file=sys.stderr)
            fcntl.flock(f, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Settings:
    """The four services must answer; `make test` started them."""
    try:
        psycopg.connect(settings.database_url, connect_timeout=5).close()
        redis.Redis.from_url(settings.redis_url, socket_timeout=5).ping()
        httpx.get(f"{settings.schema_registry_url}/subjects", timeout=5).raise_for_status()
        host, port = settings.kafka_bootstrap_servers.split(",")[0].rsplit(":", 1)
        socket.create_connection((host, int(port)), timeout=5).close()
    except Exception as exc:
        pytest.exit(f"the stack is not up ({exc}); run the tests with `make test`", 2)
    # As a worker does at its start: a test of the sinks alone may run before any worker.
    migrate(settings.database_url)
    return settings


@pytest.fixture(scope="session")
def process_env(stack: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap_servers,
        "SCHEMA_REGISTRY_URL": stack.schema_registry_url,
        "DATABASE_URL": stack.database_url,
        "REDIS_URL": stack.redis_url,
        "WORKER_WEB_PORT": str(_free_port()),
        # The suite's worker keeps its table in RocksDB (make run's default is memory://).
        "TABLE_STORE": "rocksdb://",
        "DATA_DIR": str(STACK / "test-worker"),
        # Short job timeouts, so the timeout path can be seen within a test.
        "JOB_TIMEOUT_SECONDS": "15",
        "JOB_TIMEOUT_CHECK_SECONDS": "1",
        # The content worker writes images here and the API serves them from here.
        "BLOB_DIR": str(STACK / "test-blobs"),
        "WORKER_STEP_SECONDS": "0.05",
        "PYTHONUNBUFFERED": "1",
    })
    return env


@pytest.fixture(scope="session")
def worker(process_env: dict[str, str]) -> Iterator[Process]:
    proc = Process("test-worker", ["worker"], process_env)
    proc.log.unlink(missing_ok=True)
    proc.start()
    # Faust logs "Ready" once its agents and tables are up and partitions assigned.
    _wait("stream worker", lambda: WORKER_READY in proc.log.read_text(), 180,
          proc.proc, proc.log)
    yield proc
    proc.stop()


@contextmanager
def serving_api(name: str, env: dict[str, str],
                until: str = "/health/ready") -> Iterator[str]:
    """An API process on a free port, answering 200 on `until`; its URL."""
    port = _free_port()
    proc = Process(name, ["api", "--port", str(port)], env)
    proc.log.unlink(missing_ok=True)
    proc.start()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait("API", lambda: httpx.get(f"{url}{until}", timeout=3).status_code == 200,
              90, proc.proc, proc.log)
        yield url
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def api_url(process_env: dict[str, str], worker: Process) -> Iterator[str]:
    with serving_api("test-api", process_env) as url:
        yield url


@pytest.fixture(scope="session")
def client(api_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_url, timeout=30) as c:
        yield c


@pytest.fixture
def user_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def auth(settings: Settings, user_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(settings, user_id)}"}


@pytest.fixture
def pg(stack: Settings) -> Iterator[psycopg.Connection]:
    """A fresh connection per test: chaos tests restart PostgreSQL."""
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def rds(stack: Settings) -> redis.Redis:
    return redis.Redis.from_url(stack.redis_url, decode_responses=True)


@pytest.fixture(scope="session")
def topics(stack: Settings, rds: redis.Redis, worker: Process) -> Topics:
    return Topics(stack, rds)
