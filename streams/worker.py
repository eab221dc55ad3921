"""The stream worker process: topics, schemas, migrations, then Faust (and the projector)."""

from __future__ import annotations

import asyncio
import logging

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
            await projector.start()
            try:
                await projector.run()
            finally:
                await projector.stop()

    Worker(pipeline.app, loglevel=loglevel).execute_from_commandline()


async def _project_forever(settings: Settings) -> None:
    from streams.codec import register_codecs

    codecs = register_codecs(settings.schema_registry_url, settings.schema_compatibility)
    projector = Projector(settings, codecs[OUTCOME.name])
    await projector.start()
    try:
        await projector.run()
    finally:
        await projector.stop()


def run_projector(settings: Settings) -> None:
    prepare(settings)
    asyncio.run(_project_forever(settings))
