"""`eventpipe run`: the pipeline's processes started together and stopped together.

The rules (README, "Stopping `eventpipe run`"):

1. SIGINT, SIGTERM or SIGHUP sent to this process alone stops every child: each child's
   process group gets SIGTERM, then SIGKILL for what is left after `STOP_SECONDS`. The
   handlers are installed explicitly: a process started in the background by a script
   inherits SIGINT *ignored*, and Python then never turns it into KeyboardInterrupt.
2. A child that exits on its own is reported by name, pid and exit code, and the whole run
   stops with exit code 1 (no restart: a dying worker is a fault to look at, and a process
   manager around `eventpipe run` restarts the whole set more safely than we would).
3. Each child runs in a process group of its own, so its own children (the worker's
   projector) are signalled with it, and a Ctrl-C in the terminal reaches this process only,
   which then stops the children in order. Each child also asks the kernel for SIGTERM when
   this process dies (Linux `PR_SET_PDEATHSIG`), so even a `kill -9` of it leaves no child.
4. Given a `ready_url` (the API's /health/ready), the run polls it while it watches and says
   `eventpipe run: ready` once it answers 200: the API's readiness covers the stream worker
   and the projector consuming (api/pipeline.py), so that is when a command gets its outcome.
   If it turns DOWN later the run says so, and `ready` again when it is back.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.console import Console

__all__ = ["Supervisor", "exit_description"]

STOP_SECONDS = 30.0  # a child still running this long after SIGTERM gets SIGKILL
POLL_SECONDS = 0.2
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
READY_POLL_SECONDS = 0.5  # how often the run asks the API's readiness
READY_TIMEOUT = 2.0  # the readiness answer itself bounds its checks to 2 s
_PR_SET_PDEATHSIG = 1


def exit_description(returncode: int) -> str:
    """`code 3`, or `code -9 (killed by SIGKILL)` for a signal (Popen's negative codes)."""
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"code {returncode} (killed by {signal.Signals(-returncode).name})"
    return f"code {returncode}"


def _child_setup() -> None:
    """Runs in the child between fork and exec."""
    os.setpgid(0, 0)
    # A parent started with SIGINT ignored would pass that on; the child decides for itself.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]

    def signal_group(self, sig: signal.Signals) -> None:
        # The group outlives its leader while the worker's projector is still stopping.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)


@dataclass
class Supervisor:
    """Starts `argv_prefix + [name]` for each name; `run()` blocks until they are stopped."""

    names: Sequence[str]
    argv_prefix: Sequence[str] = (sys.executable, "-m", "eventpipe.cli")
    console: Console = field(default_factory=lambda: Console(stderr=True, soft_wrap=True))
    children: list[Child] = field(default_factory=list)
    ready_url: str | None = None  # the API's /health/ready, polled until it answers 200
    _stop_signal: signal.Signals | None = None
    _signals_seen: int = 0
    _ready: bool = False
    _next_ready_poll: float = 0.0

    def run(self) -> int:
        """The run's exit code: 0 after a stop signal with every child stopped in time,
        1 when a child died on its own or had to be killed."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_signal)
        try:
            self._start()
            died = self._watch()
        finally:
            clean = self.stop()  # on any exit of ours, an exception included
        if died is not None:
            self.console.print(
                f"[bold red]eventpipe run: {died.name} (pid {died.proc.pid}) exited with "
                f"{exit_description(died.proc.returncode)}; the others were stopped[/]")
            return 1
        return 0 if clean else 1

    def _start(self) -> None:
        for name in self.names:
            proc = subprocess.Popen([*self.argv_prefix, name], preexec_fn=_child_setup)
            self.children.append(Child(name, proc))

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signals_seen += 1
        self._stop_signal = signal.Signals(signum)
        if self._signals_seen > 1:  # asked twice: no more waiting
            for child in self.children:
                child.signal_group(signal.SIGKILL)

    def _watch(self) -> Child | None:
        """Wait for a stop signal (None) or for a child that exits by itself (that child)."""
        while self._stop_signal is None:
            for child in self.children:
                if child.proc.poll() is not None:
                    self.console.print(
                        f"[bold red]eventpipe run: {child.name} (pid {child.proc.pid}) exited "
                        f"with {exit_description(child.proc.returncode)}; stopping the "
                        f"others[/]")
                    return child
            self._poll_ready()
            time.sleep(POLL_SECONDS)
        self.console.print(f"eventpipe run: {self._stop_signal.name}, stopping "
                           f"{', '.join(c.name for c in self.children)}")
        return None

    def _poll_ready(self) -> None:
        """Say when the pipeline turns ready (or stops being)."""
        if self.ready_url is None or time.monotonic() < self._next_ready_poll:
            return
        self._next_ready_poll = time.monotonic() + READY_POLL_SECONDS
        try:
            with urllib.request.urlopen(self.ready_url, timeout=READY_TIMEOUT) as answer:
                ready = answer.status == 200
        except (urllib.error.URLError, OSError, ValueError):  # 503, refused, timed out
            ready = False
        if ready and not self._ready:
            self.console.print(f"[bold green]eventpipe run: ready[/] ({self.ready_url} is UP:"
                               f" the worker and the projector consume, commands get their "
                               f"outcome)")
        elif self._ready and not ready:
            self.console.print(f"[bold yellow]eventpipe run: not ready[/] ({self.ready_url} "
                               f"is DOWN)")
        self._ready = ready

    def stop(self) -> bool:
        """SIGTERM every child's group, SIGKILL after STOP_SECONDS; True if none needed it."""
        for child in self.children:
            child.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        while time.monotonic() < deadline and any(c.proc.poll() is None for c in self.children):
            time.sleep(POLL_SECONDS)
        clean = True
        for child in self.children:
            if child.proc.poll() is None:
                clean = False
                self.console.print(f"[bold red]eventpipe run: {child.name} (pid "
                                   f"{child.proc.pid}) still running after {STOP_SECONDS:.0f}"
                                   f" s; killing it[/]")
            # The group too: a grandchild left behind by its parent's death goes with it.
            child.signal_group(signal.SIGKILL)
            child.proc.wait()
        return clean
