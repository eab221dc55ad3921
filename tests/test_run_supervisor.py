"""`eventpipe run` against the real stack: a signal sent to its pid alone stops every process
it started (the worker's projector too), and a child killed with -9 stops the run with a
message naming it and its exit code, and no process left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition

from eventpipe.cli import PROCESSES
from streams.topics import AI_JOB, COMMAND_TOPICS, CONTENT_JOB, DISTRIBUTION_JOB, OUTCOME
from tests.conftest import LOGS, ROOT, STACK, WORKER_READY, _free_port, _wait

# A pipeline of its own (consumer groups, changelog), so it neither takes partitions from the
# suite's worker nor shares its table.
APP_ID = "eventpipe-runtest"
GROUP_TOPICS = {
    APP_ID: [t.name for t in COMMAND_TOPICS],
    f"{APP_ID}-projector": [OUTCOME.name],
    f"{APP_ID}-ai-worker": [AI_JOB.name],
    f"{APP_ID}-content-worker": [CONTENT_JOB.name],
    f"{APP_ID}-distribution-worker": [DISTRIBUTION_JOB.name],
}


def _start_groups_at_the_end(bootstrap: str) -> None:
    """Commit every group of the run's pipeline at the topics' ends: its worker would
    otherwise replay the suite's whole history (commands, poison, jobs) from the earliest."""
    for group, names in GROUP_TOPICS.items():
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                             "enable.auto.commit": False})
        try:
            ends = []
            for name in names:
                meta = consumer.list_topics(name, timeout=10).topics[name]
                for p in meta.partitions:
                    high = consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1]
                    ends.append(TopicPartition(name, p, high))
            _commit_once_the_group_is_empty(consumer, ends)
        finally:
            consumer.close()


def _commit_once_the_group_is_empty(consumer: Consumer, offsets: list[TopicPartition],
                                    timeout: float = 90) -> None:
    # A member of an earlier run killed outright stays in the group until its session ends.
    deadline = time.monotonic() + timeout
    while True:
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
            return
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


class Run:
    """`eventpipe run` as a process manager or a script would start it: in the background,
    so SIGINT is ignored when it starts (as bash does for `cmd &` without job control)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.api = f"http://127.0.0.1:{env['API_PORT']}"
        self.worker_web = f"http://127.0.0.1:{env['WORKER_WEB_PORT']}"
        out = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "eventpipe.cli", "run"], env=env, cwd=ROOT, stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))

    def wait_ready(self) -> list[psutil.Process]:
        """Every process up (the five, and the worker's projector): all of them, returned."""
        _wait("eventpipe run's API", lambda: httpx.get(
            f"{self.api}/health/ready", timeout=3).status_code == 200, 180, self.proc, self.log)
        _wait("eventpipe run's worker", lambda: httpx.get(
            f"{self.worker_web}/metrics", timeout=3).status_code == 200, 180, self.proc,
            self.log)
        _wait("eventpipe run's worker", lambda: WORKER_READY in self.output(), 180, self.proc,
              self.log)
        _wait("the worker's projector", lambda: len(self.descendants()) > len(PROCESSES),
              60, self.proc, self.log)
        return self.descendants()

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)

    def child(self, name: str) -> psutil.Process:
        return next(p for p in psutil.Process(self.proc.pid).children()
                    if p.cmdline()[-1] == name)

    def exit_code(self, timeout: float = 120) -> int:
        return self.proc.wait(timeout=timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is not None:
            return
        for p in [*self.descendants(), psutil.Process(self.proc.pid)]:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        self.proc.wait()


def _alive(processes: list[psutil.Process]) -> list[str]:
    alive = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{p.pid} {' '.join(p.cmdline()[-2:])}")
        except psutil.NoSuchProcess:
            pass
    return alive


def _gone(processes: list[psutil.Process], timeout: float = 60) -> list[str]:
    """Those still alive once all are gone or the deadline passed (a bound, not a speed)."""
    deadline = time.monotonic() + timeout
    while (alive := _alive(processes)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return alive


@pytest.fixture
def run(process_env: dict[str, str]) -> Iterator[Run]:
    _start_groups_at_the_end(process_env["KAFKA_BOOTSTRAP_SERVERS"])
    env = dict(process_env)
    env.update({"APP_ID": APP_ID, "API_PORT": str(_free_port()),
                "WORKER_WEB_PORT": str(_free_port()), "TABLE_STORE": "memory://",
                "DATA_DIR": str(STACK / "run-test-worker")})
    LOGS.mkdir(parents=True, exist_ok=True)
    started = Run(env, LOGS / "test-run.log")
    yield started
    started.kill()  # only if a test failed half-way


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_the_run_alone_stops_every_child(run: Run, sig: signal.Signals) -> None:
    processes = run.wait_ready()
    assert {p.cmdline()[-1] for p in psutil.Process(run.proc.pid).children()} == set(PROCESSES)
    # The run says "ready" once the API's readiness (the pipeline's too) is UP.
    _wait("the run's ready line", lambda: "eventpipe run: ready" in run.output(), 30,
          run.proc, run.log)

    os.kill(run.proc.pid, sig)  # the run's pid, not its group

    assert run.exit_code() == 0, run.output()[-3000:]
    assert _gone(processes) == []
    assert f"eventpipe run: {sig.name}, stopping" in run.output()


def test_a_child_killed_with_9_stops_the_run_with_its_name_and_code(run: Run) -> None:
    processes = run.wait_ready()
    victim = run.child("content-worker")

    victim.kill()  # SIGKILL

    assert run.exit_code() == 1, run.output()[-3000:]
    assert _gone(processes) == []
    assert (f"content-worker (pid {victim.pid}) exited with code -9 (killed by SIGKILL)"
            in run.output())


def test_the_run_killed_with_9_leaves_no_child(run: Run) -> None:
    processes = run.wait_ready()

    run.proc.kill()  # no handler runs: each child's parent-death signal stops it

    assert run.exit_code() == -signal.SIGKILL
    assert _gone(processes) == []
