"""The stream worker process: topics, schemas, migrations, then Faust (and the projector)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from faust import Worker

from eventpipe.settings import Settings
from sinks.migrate import migrate
from sinks.projector import Projector
from streams.admin import ensure_topics
from streams.app import build_pipeline
from streams.topics import OUTCOME

__all__ = ["prepare", "run_projector", "run_worker"]

log = logging.getLogger(__name__)


def prepare(settings: Settings) -> None:
    """Everything the pipeline needs before it consumes: topics and database schema."""
    created = asyncio.run(ensure_topics(settings))
    if created:
        log.info("created topics: %s", ", ".join(created))
    applied = migrate(settings.database_url)
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    prepare(settings)
    pipeline = build_pipeline(settings)
    if settings.worker_embed_projector:
        projector = Projector(settings, pipeline.codec(OUTCOME))

        @pipeline.app.task
        async def project() -> None:
            await projector.run()

    Worker(pipeline.app, loglevel=loglevel).execute_from_commandline()


async def _project_until_stopped(settings: Settings) -> None:
    from streams.codec import register_codecs

    codecs = register_codecs(settings.schema_registry_url, settings.schema_compatibility)
    projector = Projector(settings, codecs[OUTCOME.name])
    # SIGTERM ends the run through `finally`: the written offsets are committed and the
    # consumer leaves its group, so a successor joins at once instead of waiting out this
    # member's session (Python's default SIGTERM exits on the spot, skipping both).
    run = asyncio.current_task()
    assert run is not None
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, run.cancel)
    await projector.run()


def run_projector(settings: Settings) -> None:
    """Run until SIGTERM or Ctrl-C."""
    prepare(settings)
    with contextlib.suppress(asyncio.CancelledError):
        asyncio.run(_project_until_stopped(settings))
