"""Bearer JWT: the user is the `sub` claim (a UUID). One algorithm, from settings."""

from __future__ import annotations

import time
import uuid
from typing import Annotated

import jwt
from cachetools import LRUCache
from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.errors import ApiError
from eventpipe.settings import Settings, get_settings
from streams.vocabulary import ErrorCode

__all__ = ["CurrentUser", "current_user", "issue_token", "verified_user"]

_bearer = HTTPBearer(auto_error=False, description="JWT whose `sub` is the user's UUID")


def _verifying_key(settings: Settings) -> str:
    return settings.jwt_public_key if settings.jwt_algorithm == "RS256" else settings.jwt_secret


def issue_token(settings: Settings, user_id: str, ttl_seconds: int | None = None) -> str:
    """A development token signed with the configured HS256 secret."""
    now = int(time.time())
    claims = {"sub": str(uuid.UUID(user_id)), "iat": now,
              "exp": now + (ttl_seconds or settings.jwt_token_ttl_seconds)}
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


async def _settings() -> Settings:
    return get_settings()


# Verified tokens: (key, token) -> (user, exp). A signature check is about 33 us (a tenth of
# a GET's whole cost), and a client sends the same token with every request. Only `exp`
# can turn a verified token invalid later (nbf and iat were checked once), so a hit still
# checks it; a token past its exp is decoded again and rejected by PyJWT.
_verified: LRUCache[tuple[str, str], tuple[str, float]] = LRUCache(maxsize=10_000)


def verified_user(token: str, settings: Settings) -> str:
    """The `sub` of a valid token; raises jwt.PyJWTError or ValueError for any other."""
    key = _verifying_key(settings)
    hit = _verified.get((key, token))
    if hit is not None and hit[1] > time.time():
        return hit[0]
    # One explicit algorithm (never "none", never HS and RS mixed), exp required.
    claims = jwt.decode(token, key, algorithms=[settings.jwt_algorithm],
                        options={"require": ["exp", "sub"]})
    user = str(uuid.UUID(str(claims["sub"])))
    _verified[(key, token)] = (user, float(claims["exp"]))
    return user


# Dependencies are `async def`: FastAPI runs a plain `def` one in a worker thread, a hop per
# request that cost an eighth of the API's time at 1,000 requests/s (bench/ANALYSIS.md).
async def current_user(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    settings: Annotated[Settings, Depends(_settings)],
) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(ErrorCode.AUTH_001)
    try:
        return verified_user(credentials.credentials, settings)
    except (jwt.PyJWTError, ValueError) as exc:
        reason = f"유효하지 않은 토큰입니다: {type(exc).__name__}"
        raise ApiError(ErrorCode.AUTH_001, reason) from exc


CurrentUser = Annotated[str, Depends(current_user)]
