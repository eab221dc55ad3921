"""The worker's projector in a child process (streams/worker.py, WORKER_PROJECTOR=process):
started again when it dies, and gone when its worker is, even after a kill -9 (an orphan
would go on projecting beside the next worker's own projector).

Each test runs the child with an app id of its own: it reads its own (empty) changelog and
the shared outcome topic beside the session worker's projector, without taking that one's
partitions (as tests/test_projector_process.py does).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient

from eventpipe.settings import Settings
from sinks.projector_process import ProjectorProcess
from streams.metrics import SinkStats
from streams.topics import PURPOSE
from tests.conftest import ROOT, _wait
from tests.pipeline import Topics
from tests.test_lifecycle_topics import STORE
from tests.test_projector_process import _members

# A stand-in for the worker: starts the child as the worker does, says its pid, waits.
PARENT = """
import time
from confluent_kafka.admin import AdminClient

from eventpipe.settings import Settings
from streams.metrics import SinkStats
from sinks.projector_process import ProjectorProcess
child = ProjectorProcess(Settings(), SinkStats())
child.start()
print(child.process.pid, flush=True)
time.sleep(600)
"""


def _gone(pid: int) -> bool:
    """Exited (a zombie not yet reaped counts: it no longer runs)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def _apply_one(topics: Topics) -> None:
    topics.apply(PURPOSE, str(uuid.uuid4()), str(uuid.uuid4()), "PurposeSelected", STORE)


def test_a_killed_projector_child_is_started_again(stack: Settings, topics: Topics) -> None:
    stats = SinkStats()
    child = ProjectorProcess(stack.model_copy(update={"app_id": f"child-{uuid.uuid4().hex[:8]}"}),
                             stats)
    child.start()
    try:
        first = child.process
        assert first is not None
        _apply_one(topics)  # an outcome for the child to project
        _wait("the child to project", lambda: stats.records("postgres") > 0, 120)

        os.kill(first.pid, signal.SIGKILL)
        first.join(10)
        child.keep_alive()  # the worker's timer does this every second
        second = child.process
        assert second is not first and second is not None and second.is_alive()
        written = stats.records("postgres")
        _apply_one(topics)
        _wait("the new child to project", lambda: stats.records("postgres") > written, 120)

        second.terminate()  # SIGTERM, as when the worker stops: commit, leave, exit 0
        second.join(30)
        assert second.exitcode == 0
    finally:
        if child.process is not None and child.process.is_alive():
            child.process.kill()


def test_the_projector_child_stops_when_its_worker_is_killed(
    process_env: dict[str, str], worker: object,
) -> None:
    app_id = f"child-{uuid.uuid4().hex[:8]}"
    group = f"{app_id}-projector"
    admin = AdminClient({"bootstrap.servers": process_env["KAFKA_BOOTSTRAP_SERVERS"]})
    env = {**process_env, "APP_ID": app_id}
    parent = subprocess.Popen([sys.executable, "-c", PARENT], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    try:
        _wait("the child in its consumer group", lambda: _members(admin, group) == 1, 120)
        parent.kill()  # kill -9: nothing runs in the parent to stop its child
        parent.wait()
        _wait("the orphaned projector to stop", lambda: _gone(pid), 30)
        # It stopped as on SIGTERM, leaving its group (a member that just died would stay
        # listed until its session ran out).
        assert _members(admin, group) == 0
    finally:
        if not _gone(pid):
            os.kill(pid, signal.SIGKILL)
        if parent.poll() is None:
            parent.kill()
