"""Real crashes, each followed by the oracle: one test per kind (tests/soak.py's `KINDS`), then
the soak with all of them on a seeded random schedule (SOAK_MINUTES, default 3 here).

Marked `soak`: `make test-chaos` runs them, `make test` does not (they take minutes). Each
crash must leave the oracle without a difference and show, in a log written after it, that
its recovery path ran.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from eventpipe.settings import Settings
from tests.conftest import ROOT, WORKER_READY, Process
from tests.soak import COLLABORATORS, KINDS, Pipeline, Soak, service_pid, write_report
from tests.test_collaborators_e2e import start

pytestmark = [pytest.mark.chaos, pytest.mark.soak]


@pytest.fixture(scope="module")
def pipeline(settings: Settings, worker: Process, api_url: str,
             process_env: dict[str, str]) -> Iterator[Pipeline]:
    """The suite's worker (every job answered: no timeout while the collaborators are
    away) and API, and the three collaborators."""
    if service_pid("kafka") is None or service_pid("postgres") is None:
        pytest.skip("needs the stack's own services to crash them")
    suite = worker.env["JOB_TIMEOUT_SECONDS"]
    worker.env["JOB_TIMEOUT_SECONDS"] = "3600"
    worker.restart(WORKER_READY)
    env = {**process_env, "PUBLIC_BASE_URL": api_url, "JOB_TIMEOUT_SECONDS": "3600"}
    collaborators = {name: start(f"test-{name}", name, env) for name in COLLABORATORS}
    yield Pipeline(settings, worker, api_url, collaborators)
    for proc in collaborators.values():
        proc.stop()
    worker.env["JOB_TIMEOUT_SECONDS"] = suite
    worker.restart(WORKER_READY)


def _judge(soak: Soak) -> None:
    report = soak.run()
    print(report, *(f"{f.kind} at {f.at:.0f} s: {f.evidence}" for f in soak.faults), sep="\n")
    assert soak.errors == [], "\n".join(soak.errors)
    assert report.ok, str(report)
    for fault in soak.faults:
        assert fault.killed is not None and fault.restarted is not None, fault
        assert fault.evidence, f"{fault.kind}: no log line shows its recovery ({fault})"
    assert report.counts["accepted"] > 0 and report.counts["dead letters"] > 0


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("kind", KINDS)
def test_a_crash_then_the_oracle(pipeline: Pipeline, kind: str) -> None:
    _judge(Soak(pipeline, minutes=1.0, rate=8, seed=18, kinds=(kind,), faults=1))


@pytest.mark.timeout(3600)
def test_soak(pipeline: Pipeline) -> None:
    minutes = float(os.environ.get("SOAK_MINUTES", "3"))
    soak = Soak(pipeline, minutes=minutes, rate=float(os.environ.get("SOAK_RATE", "10")),
                seed=int(os.environ.get("SOAK_SEED", "18")))
    try:
        _judge(soak)
    finally:
        if soak.report is not None:
            write_report(soak, ROOT / ".stack" / "logs" / "SOAK-test.md")
