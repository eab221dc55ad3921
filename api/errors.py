"""Every error answers `{"code", "message"}` (plus `details` where there are some)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from streams.vocabulary import ErrorCode, error_message

__all__ = ["STATUS_BY_CODE", "ApiError", "install_error_handlers"]

log = logging.getLogger(__name__)

STATUS_BY_CODE: dict[str, int] = {
    ErrorCode.EVENT_001: 400,
    ErrorCode.EVENT_002: 400,
    ErrorCode.EVENT_003: 409,
    ErrorCode.EVENT_004: 409,
    ErrorCode.EVENT_005: 404,
    ErrorCode.EVENT_006: 400,
    ErrorCode.JOB_001: 404,
    ErrorCode.BLOB_001: 403,
    ErrorCode.BLOB_002: 404,
    ErrorCode.AUTH_001: 401,
    ErrorCode.VALIDATION_ERROR: 422,
}


class ApiError(Exception):
    def __init__(self, code: str, message: str | None = None,
                 details: list[Any] | None = None, status: int | None = None) -> None:
        self.code = code
        self.message = message or error_message(ErrorCode(code))
        self.details = details or []
        self.status = status or STATUS_BY_CODE.get(code, 400)
        super().__init__(f"{self.code}: {self.message}")

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(body, status_code=self.status, headers=headers)


def _dependency_errors() -> dict[type[BaseException], str]:
    """Failures of a store or the broker: the request was fine, a dependency was not."""
    import aiokafka.errors
    import psycopg
    import psycopg_pool
    import redis.exceptions

    return {
        psycopg.OperationalError: "postgres",
        psycopg.errors.UndefinedTable: "postgres",  # not migrated yet
        psycopg_pool.PoolTimeout: "postgres",
        redis.exceptions.ConnectionError: "redis",
        redis.exceptions.TimeoutError: "redis",
        aiokafka.errors.KafkaError: "kafka",
        ConnectionError: "a dependency",
        TimeoutError: "a dependency",
    }


def install_error_handlers(app: FastAPI) -> None:
    for error_type, dependency in _dependency_errors().items():
        app.add_exception_handler(error_type, _unavailable(dependency))

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))[:200]}
            for e in exc.errors()[:20]
        ]
        return ApiError(ErrorCode.VALIDATION_ERROR, details=details).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # the framework could not even parse the body
            return ApiError(ErrorCode.VALIDATION_ERROR, details=[str(exc.detail)]).response()
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
        return JSONResponse({"code": code, "message": str(exc.detail)},
                            status_code=exc.status_code, headers=exc.headers)  # e.g. Allow


def _unavailable(dependency: str) -> Any:
    async def handler(_: Request, exc: Exception) -> JSONResponse:
        log.warning("%s unavailable: %s: %s", dependency, type(exc).__name__, exc)
        return JSONResponse(
            {"code": "SERVICE_UNAVAILABLE",
             "message": f"{dependency} is unavailable; retry shortly"},
            status_code=503, headers={"Retry-After": "1"})
    return handler
