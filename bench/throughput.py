"""Stream throughput: the same preloaded commands through each system, phase by phase.

Systems: the project with one worker, the project with two workers (the topics have two
partitions), the same topology on Quix Streams, and the bare aiokafka decode loop. For each
phase (see `bench.load`) the commands are produced first, then each system is started and
timed from its first decision to the moment its PostgreSQL projection holds the outcome of
the phase's last command, then stopped. Start-up is outside the time; a rebalance of two
workers joining at once is inside it.
"""

from __future__ import annotations

import abc
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench.procs import ROOT, Isolated, Proc, wait_until
from sinks.migrate import migrate

__all__ = ["CeilingRun", "FaustRun", "PhaseTime", "ProjectedRun", "QuixRun", "SystemResult"]

QUIX_PYTHON = ROOT / "bench" / ".venv-quix" / "bin" / "python"
PHASE_TIMEOUT = 900.0
# A phase whose outcomes and states stop coming for this long did not finish: the run says
# so (how many are missing) and goes on with the next system instead of waiting forever.
NO_PROGRESS_SECONDS = 60.0


@dataclass
class PhaseTime:
    commands: int
    seconds: float
    missing: int = 0  # outcomes, or else states, never projected (did not finish)


@dataclass
class SystemResult:
    name: str
    phases: list[PhaseTime] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)  # projected events by status

    @property
    def commands(self) -> int:
        return sum(p.commands for p in self.phases)

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.phases)

    @property
    def missing(self) -> int:
        return sum(p.missing for p in self.phases)

    @property
    def rate(self) -> float:
        """Commands per second; NaN when a phase did not finish (no rate to claim)."""
        if self.missing:
            return float("nan")
        return self.commands / self.seconds if self.seconds else 0.0


def _count(url: str, sql: str, *args: Any) -> Any:
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            return conn.execute(sql, args).fetchone()
    except psycopg.errors.UndefinedTable:
        return None


class ProjectedRun(abc.ABC):
    """A system that projects into PostgreSQL: started for each phase, timed from its first
    decision to the moment its projection holds the phase's last outcome and every state
    those outcomes name, then stopped."""

    result: SystemResult

    def __init__(self, iso: Isolated) -> None:
        self.iso = iso
        iso.reset_stores()

    @abc.abstractmethod
    def _procs(self) -> list[Proc]:
        """The processes of one phase (not started)."""

    @abc.abstractmethod
    def _first_decision(self, since: datetime) -> float:
        """Wall time of the phase's first decision."""

    def _outcomes(self) -> int:
        row = _count(self.iso.database_url, "SELECT count(*) FROM command_outcomes")
        return int(row[0]) if row else 0

    def _behind(self) -> int:
        """Events whose projected state is older than their latest accepted outcome says
        (outcomes and states come on two topics: one can be projected before the other)."""
        row = _count(self.iso.database_url,
                     "SELECT count(*) FROM events e JOIN (SELECT event_id,"
                     " max(event_version) AS v FROM command_outcomes WHERE status = 'ACCEPTED'"
                     " GROUP BY 1) o USING (event_id) WHERE e.version < o.v")
        return int(row[0]) if row else 0

    def _missing(self, expected_total: int) -> int:
        """Outcomes not yet projected, else events whose state is not yet projected."""
        outcomes = self._outcomes()
        return expected_total - outcomes if outcomes < expected_total else self._behind()

    def run_phase(self, commands: int, expected_total: int, since: datetime) -> PhaseTime:
        procs = [p.start() for p in self._procs()]
        seen = {"missing": -1, "at": time.monotonic()}

        def done_or_stuck() -> bool:
            missing = self._missing(expected_total)
            if missing != seen["missing"]:
                seen.update(missing=missing, at=time.monotonic())
            return missing <= 0 or time.monotonic() - seen["at"] > NO_PROGRESS_SECONDS

        try:
            end = wait_until(f"{self.result.name}: {expected_total} outcomes and their states",
                             done_or_stuck, PHASE_TIMEOUT, procs[0], poll=0.25)
            missing = max(0, self._missing(expected_total))
            if missing:
                end = seen["at"]  # the last progress seen
            end_wall = time.time() - (time.monotonic() - end)
            first_wall = self._first_decision(since)
            self.result.peak_rss_mb = max(self.result.peak_rss_mb,
                                          *(p.peak_rss_mb() for p in procs))
        finally:
            for p in procs:
                p.stop()
        phase = PhaseTime(commands, end_wall - first_wall, missing)
        self.result.phases.append(phase)
        return phase

    def finish(self) -> None:
        rows = psycopg.connect(self.iso.database_url, autocommit=True).execute(
            "SELECT status, count(*) FROM events GROUP BY 1").fetchall()
        self.result.statuses = {status: n for status, n in rows}


class FaustRun(ProjectedRun):
    """The project: `eventpipe worker` processes, each with its projector (`WORKER_PROJECTOR`:
    in a child process, the default, or as a task in the worker's event loop)."""

    def __init__(self, iso: Isolated, workers: int, projector: str = "process") -> None:
        super().__init__(iso)
        self.workers = workers
        self.projector = projector
        name = f"eventpipe, {workers} worker{'s' * (workers > 1)}"
        self.result = SystemResult(
            name + (", projector in the worker's loop" if projector == "task" else ""))

    def _procs(self) -> list[Proc]:
        procs = []
        for i in range(self.workers):
            env = {**self.iso.env(), "WORKER_WEB_PORT": str(self.iso.web_port + i),
                   "DATA_DIR": f"{self.iso.env()['DATA_DIR']}/{i}",
                   "WORKER_PROJECTOR": self.projector}
            Path(env["DATA_DIR"]).mkdir(parents=True, exist_ok=True)
            procs.append(Proc(f"worker-{self.iso.name}-{i}",
                              ["-m", "eventpipe.cli", "worker"], env))
        return procs

    def _first_decision(self, since: datetime) -> float:
        first = _count(self.iso.database_url,
                       "SELECT min(decided_at) FROM command_outcomes WHERE decided_at >= %s",
                       since.replace(tzinfo=None))[0]
        return float(first.replace(tzinfo=UTC).timestamp())


class QuixRun(ProjectedRun):
    """The same topology on Quix Streams (`bench.quix_topology`), in its own venv, writing
    the project's projection (its schema migrated here, as the worker migrates its own)."""

    def __init__(self, iso: Isolated) -> None:
        super().__init__(iso)
        self.result = SystemResult("Quix Streams, 1 process")
        self.first_file = ROOT / "bench" / "data" / "quix-first.txt"
        migrate(iso.database_url)

    def _procs(self) -> list[Proc]:
        self.first_file.parent.mkdir(parents=True, exist_ok=True)
        self.first_file.unlink(missing_ok=True)
        env = {**self.iso.env(), "QUIX_GROUP": "bench-quix",
               "QUIX_STATE_DIR": self.iso.env()["DATA_DIR"], "QUIX_OUTPUT": "bench.quix.output",
               "QUIX_FIRST_FILE": str(self.first_file)}
        return [Proc("quix", ["bench/quix_topology.py"], env, python=str(QUIX_PYTHON))]

    def _first_decision(self, since: datetime) -> float:
        return float(self.first_file.read_text())


class CeilingRun:
    """A reading loop that does no work of ours: the bare aiokafka consume-and-decode loop
    (`bench.ceiling`), or a Faust agent that does nothing (`bench.faust_noop`)."""

    def __init__(self, module: str = "bench.ceiling",
                 name: str = "aiokafka consume + decode only") -> None:
        self.module = module
        self.group = module.replace(".", "-")
        self.result = SystemResult(name)

    def run_phase(self, commands: int, expected_total: int, since: datetime) -> PhaseTime:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        out = subprocess.run([sys.executable, "-m", self.module, self.group,
                              str(commands)], env=env, cwd=ROOT, capture_output=True,
                             text=True, check=True, timeout=PHASE_TIMEOUT)
        found = json.loads(out.stdout.strip().splitlines()[-1])
        phase = PhaseTime(commands, found["last"] - found["first"])
        self.result.phases.append(phase)
        return phase

    def finish(self) -> None:
        pass
