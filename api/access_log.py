"""The access log: a line per request in uvicorn's format, written by a plain ASGI wrapper
around the whole app instead of uvicorn's logger.

uvicorn's access line goes through `logging` (a record, the caller's frame, a filter, a
formatter, a handler's lock): about a tenth of a hot GET's CPU, against a few microseconds
for formatting the line here (bench/ANALYSIS.md, 2026-12-02). The line is the same,
written when the response starts, as uvicorn writes it:

    INFO:     127.0.0.1:52000 - "GET /api/events/<id> HTTP/1.1" 200 OK

A signed image link's `token` is a credential (like a SAS), so it is redacted from the
query string before the line is written. It wraps the app outside FastAPI's own error
middleware, so a 500 is logged too.
"""

from __future__ import annotations

import http
import re
import sys
from typing import TextIO
from urllib.parse import quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AccessLog"]

_TOKEN = re.compile(r"(\btoken=)[^&\s]+")
_PHRASES = {s.value: s.phrase for s in http.HTTPStatus}


def _request_line(scope: Scope) -> str:
    path = quote(scope.get("root_path", "") + scope["path"])
    query = scope.get("query_string", b"")
    if query:
        text = query.decode("ascii", "replace")
        if "token=" in text:
            text = _TOKEN.sub(r"\1<redacted>", text)
        path = f"{path}?{text}"
    return f'{scope["method"]} {path} HTTP/{scope["http_version"]}'


class AccessLog:
    def __init__(self, app: ASGIApp, stream: TextIO | None = None) -> None:
        self.app = app
        self.stream = stream or sys.stdout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def logged(message: Message) -> None:
            if message["type"] == "http.response.start":
                client = scope.get("client")
                peer = f"{client[0]}:{client[1]}" if client else "-"
                status = message["status"]
                self.stream.write(f'INFO:     {peer} - "{_request_line(scope)}" {status} '
                             f'{_PHRASES.get(status, "")}\n')
                self.stream.flush()  # a line per write, as uvicorn's handler: tail -f works
            await send(message)

        await self.app(scope, receive, logged)
