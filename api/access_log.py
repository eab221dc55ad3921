"""uvicorn's access log prints each request's path with its query string. A signed image
link's `token` is a credential (like a SAS), so it is replaced before the line is written."""

from __future__ import annotations

import logging
import re

__all__ = ["RedactTokens", "redact_access_log"]

_TOKEN = re.compile(r"(\btoken=)[^&\s]+")


class RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_TOKEN.sub(r"\1<redacted>", a) if isinstance(a, str) else a
                                for a in record.args)
        return True


def redact_access_log() -> None:
    """Idempotent: the filter is added to uvicorn's access logger once."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactTokens) for f in logger.filters):
        logger.addFilter(RedactTokens())
