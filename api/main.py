"""The FastAPI application: routers, error handlers, and the clients' lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.errors import install_error_handlers
from api.fast_reads import FastReads
from api.limits import BodyLimit, InFlightLimit
from api.metrics import install_request_metrics
from api.routers import (
    blobs,
    commands,
    events,
    health,
    images,
    jobs,
    publishing,
    recommendations,
)
from api.services import Services
from eventpipe.gc_freeze import freeze_startup_objects
from eventpipe.settings import Settings, get_settings

__all__ = ["create_app"]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = await Services.open(settings)
        freeze_startup_objects("api")
        try:
            yield
        finally:
            await app.state.services.close()

    app = FastAPI(
        title="eventpipe Event Service",
        version="0.1.0",
        description="Marketing events for small shop owners: commands go through Kafka, "
        "reads come from the PostgreSQL and Redis projections.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_request_metrics(app)
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)
    # The hot GETs' common case, before everything but the shedding (api/fast_reads.py).
    app.add_middleware(FastReads, state=app.state)
    # Outermost (added last), so a shed request costs no other middleware's work.
    app.add_middleware(InFlightLimit, reads=settings.api_max_reads_in_flight,
                       commands=settings.api_max_commands_in_flight,
                       lists=settings.api_max_lists_in_flight,
                       max_lag=settings.api_shed_loop_lag_seconds)
    # Fixed paths before /api/events/{eventId}, so "jobs" and "commands" are not read as ids.
    for module in (jobs, commands, events, recommendations, images, publishing, health, blobs):
        app.include_router(module.router)
    return app
