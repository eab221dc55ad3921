"""Liveness, readiness of each dependency and of the pipeline, and Prometheus metrics.

Ready (200) only when a command can be answered: the four services answer, and the stream
worker and the projector consume (api/pipeline.py). Otherwise 503, each check named."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.services import Services, ServicesDep

router = APIRouter(tags=["health"])
_CHECK_TIMEOUT = 2.0


async def _kafka(s: Services) -> None:
    await s.producer.client.fetch_all_metadata()


async def _registry(s: Services) -> None:
    async with httpx.AsyncClient(timeout=_CHECK_TIMEOUT) as client:
        (await client.get(f"{s.settings.schema_registry_url}/subjects")).raise_for_status()


async def _postgres(s: Services) -> None:
    async with s.pool.connection(timeout=_CHECK_TIMEOUT) as conn:
        await conn.execute("SELECT 1")


async def _redis(s: Services) -> None:
    await s.redis.ping()


_CHECKS = {"kafka": _kafka, "schemaRegistry": _registry, "postgres": _postgres, "redis": _redis}


@router.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "UP"}


@router.get("/health/ready",
            responses={503: {"description": "a dependency is down, or the pipeline cannot "
                                            "answer a command yet; each check is named"}})
async def ready(services: ServicesDep) -> JSONResponse:
    async def check(name: str) -> tuple[str, dict[str, Any]]:
        try:
            await asyncio.wait_for(_CHECKS[name](services), _CHECK_TIMEOUT)
            return name, {"status": "UP"}
        except Exception as exc:  # any failure means "not ready", and says why
            return name, {"status": "DOWN", "error": f"{type(exc).__name__}: {exc}"[:300]}

    async def pipeline() -> dict[str, dict[str, Any]]:
        try:  # (the check bounds its own time and never raises; this is a last guard)
            return await asyncio.wait_for(services.pipeline.results(), _CHECK_TIMEOUT)
        except Exception as exc:
            down = {"status": "DOWN", "error": f"{type(exc).__name__}: {exc}"[:300]}
            return {"streamWorker": down, "projector": dict(down)}

    *dependencies, pipeline_results = await asyncio.gather(
        *(check(n) for n in _CHECKS), pipeline())
    results = {**dict(dependencies), **pipeline_results}
    up = all(r["status"] == "UP" for r in results.values())
    return JSONResponse({"status": "UP" if up else "DOWN", "checks": results},
                        status_code=200 if up else 503)


@router.get("/metrics", response_class=Response, responses={
    200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
