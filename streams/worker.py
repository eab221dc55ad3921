"""The stream worker process: topics, schemas, migrations, then Faust (and the projector).

By default the worker runs its projector in a child process (`WORKER_PROJECTOR=process`):
the processor's event loop and the projector's decoding and store writes then each have a
core, where in one loop the projector took about a third of the worker's time. The child is the
same `Projector` as `eventpipe projector`; the worker starts it, starts it again if it dies,
serves its figures at its own /metrics, and stops it when it stops (the child also stops by
itself when the worker is gone, even after a `kill -9`). `task` runs the projector as a task
in the worker's event loop, `off` not at all (then run `eventpipe projector` beside it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from faust import Worker

from eventpipe import LOG_FORMAT
from eventpipe.settings import Settings
from sinks.migrate import migrate
from sinks.projector import Projector
from streams.admin import NotCopartitioned, ensure_topics
from streams.app import build_pipeline
from streams.metrics import SinkStats
from streams.topics import OUTCOME

__all__ = ["ProjectorProcess", "prepare", "run_projector", "run_worker"]

log = logging.getLogger(__name__)
SUPERVISE_SECONDS = 1.0  # how often the worker looks at its projector child


def prepare(settings: Settings) -> None:
    """Everything the pipeline needs before it consumes: topics and database schema."""
    try:
        created = asyncio.run(ensure_topics(settings))
    except NotCopartitioned as exc:
        raise SystemExit(f"eventpipe: {exc}") from None
    if created:
        log.info("created topics: %s", ", ".join(created))
    applied = migrate(settings.database_url)
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    prepare(settings)
    pipeline = build_pipeline(settings)
    stats = SinkStats()
    stats.expose()
    if settings.worker_projector == "task":
        projector = Projector(settings, pipeline.codecs[OUTCOME.name], stats)

        @pipeline.app.task
        async def project() -> None:
            await projector.run()

    elif settings.worker_projector == "process":
        child = ProjectorProcess(settings, stats)
        child.start()

        @pipeline.app.timer(SUPERVISE_SECONDS)
        async def supervise_projector() -> None:
            child.keep_alive()

    Worker(pipeline.app, loglevel=loglevel).execute_from_commandline()


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
        asyncio.run(_project_until_stopped(settings, stats, lifeline))


async def _project_until_stopped(settings: Settings, stats: SinkStats | None = None,
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
    await projector.run()


def _orphaned(lifeline: int, projector: Projector) -> None:
    asyncio.get_running_loop().remove_reader(lifeline)
    log.warning("the worker is gone; the projector stops")
    projector.stop_soon()


def run_projector(settings: Settings) -> None:
    """Run until SIGTERM or Ctrl-C."""
    prepare(settings)
    with contextlib.suppress(asyncio.CancelledError):
        asyncio.run(_project_until_stopped(settings))
