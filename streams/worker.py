"""The stream worker process: topics, schemas, migrations, then Faust (and the projector).

By default the worker runs its projector in a child process (`WORKER_PROJECTOR=process`):
the processor's event loop and the projector's decoding and store writes then each have a
core, where in one loop the projector took about a third of the worker's time. The child
(sinks/projector_process.py) is the same `Projector` as `eventpipe projector`; the worker
starts it, starts it again if it dies, serves its figures at its own /metrics, and stops it
when it stops (the child also stops by itself when the worker is gone, even after a
`kill -9`). `task` runs the projector as a task
in the worker's event loop, `off` not at all (then run `eventpipe projector` beside it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from faust import Worker

from eventpipe.settings import Settings
from sinks.migrate import migrate
from sinks.projector import Projector
from sinks.projector_process import ProjectorProcess, project_until_stopped
from streams.admin import TopicsUnfit, ensure_topics
from streams.app import build_pipeline
from streams.metrics import SinkStats
from streams.topics import OUTCOME

__all__ = ["prepare", "run_projector", "run_worker"]

log = logging.getLogger(__name__)
SUPERVISE_SECONDS = 1.0  # how often the worker looks at its projector child


def prepare(settings: Settings) -> None:
    """Everything the pipeline needs before it consumes: topics and database schema."""
    try:
        created = ensure_topics(settings)
    except TopicsUnfit as exc:
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


def run_projector(settings: Settings) -> None:
    """Run until SIGTERM or Ctrl-C."""
    prepare(settings)
    with contextlib.suppress(asyncio.CancelledError):
        asyncio.run(project_until_stopped(settings))
