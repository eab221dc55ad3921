"""The worker's projector in a child process, and its life: started, started again if it
dies, stopped with the worker (or by itself when the worker is gone, even after `kill -9`).

Apart from `streams/worker.py` so that the child, which `spawn` starts by importing the
module of its target, imports the projector's libraries only, not Faust: it starts in about
half the time (0.6 s of imports against 1.3 s), at the worker's start and at each restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from eventpipe import LOG_FORMAT
from eventpipe.gc_freeze import freeze_startup_objects
from eventpipe.settings import Settings
from sinks.projector import Projector
from streams.metrics import SinkStats
from streams.topics import OUTCOME

__all__ = ["ProjectorProcess", "project_until_stopped"]

log = logging.getLogger(__name__)


class ProjectorProcess:
    """The worker's projector in a child process (see the module doc)."""

    def __init__(self, settings: Settings, stats: SinkStats) -> None:
        self.settings = settings
        self.stats = stats
        self.process: BaseProcess | None = None
        self._lifeline: Connection | None = None

    def start(self) -> None:
        context = multiprocessing.get_context("spawn")  # not fork: the worker has threads
        # The child reads the lifeline's other end: it sees EOF when this process is gone,
        # however it ended (the OS closes its end). Nothing is ever written on it.
        if self._lifeline is not None:
            self._lifeline.close()
        ends, self._lifeline = context.Pipe(duplex=False)
        # Daemonic: when the worker exits, multiprocessing sends it SIGTERM and waits.
        self.process = context.Process(
            target=_projector_child, args=(self.settings, self.stats, ends),
            name="eventpipe-projector", daemon=True)
        self.process.start()
        ends.close()
        log.info("projector process started (pid %s)", self.process.pid)

    def keep_alive(self) -> None:
        if self.process is not None and self.process.exitcode is not None:
            log.error("the projector process exited (code %s); starting it again",
                      self.process.exitcode)
            self.start()


def _projector_child(settings: Settings, stats: SinkStats, lifeline: Connection) -> None:
    logging.basicConfig(level="INFO", format=LOG_FORMAT)
    with contextlib.suppress(asyncio.CancelledError):
        asyncio.run(project_until_stopped(settings, stats, lifeline))


async def project_until_stopped(settings: Settings, stats: SinkStats | None = None,
                                 lifeline: Connection | None = None) -> None:
    from streams.codec import register_codecs

    codecs = register_codecs(settings.schema_registry_url, settings.schema_compatibility)
    projector = Projector(settings, codecs[OUTCOME.name], stats)
    # SIGTERM ends the run through `finally`: the written offsets are committed and the
    # consumer leaves its group, so a successor joins at once instead of waiting out this
    # member's session (Python's default SIGTERM exits on the spot, skipping both).
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, projector.stop_soon)
    if lifeline is not None:
        # A worker killed outright (kill -9) cannot stop its child: the child stops itself.
        loop.add_reader(lifeline.fileno(), _orphaned, lifeline.fileno(), projector)
    freeze_startup_objects("projector")
    await projector.run()


def _orphaned(lifeline: int, projector: Projector) -> None:
    asyncio.get_running_loop().remove_reader(lifeline)
    log.warning("the worker is gone; the projector stops")
    projector.stop_soon()
