"""Where event images go, and the URL a client fetches each one from.

Two stores behind one `BlobStore` protocol, chosen by `BLOB_STORE`:

- `LocalBlobStore` (default): files under `BLOB_DIR`, served by the API at
  `GET /blobs/{name}?token=...`. The token is an itsdangerous signature (`BLOB_SIGNING_KEY`)
  of the name and the moment the link expires, so, like a SAS, the link itself is the
  credential and carries its own expiry (`BLOB_URL_TTL_SECONDS`, 7 days).
- `AzureBlobStore`: Azure Blob Storage (Azurite locally), the original BlobStorageUploader: a
  private container (no public access), and a read-only SAS valid 7 days on each blob URL.

Both try an upload `BLOB_UPLOAD_ATTEMPTS` (3) times with exponential backoff (tenacity).
The Azure SDK's own retries are switched off, so this is the only retry policy.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobSasPermissions, ContentSettings, generate_blob_sas
from azure.storage.blob.aio import BlobServiceClient
from itsdangerous import BadSignature, URLSafeSerializer
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from eventpipe.settings import Settings

__all__ = [
    "AzureBlobStore",
    "BlobNameError",
    "BlobStore",
    "BlobTokenError",
    "BlobTokenExpired",
    "BlobTokenInvalid",
    "BlobUploadError",
    "LocalBlobStore",
    "blob_path",
    "blob_store_for",
    "check_blob_name",
    "sign_blob_name",
    "verify_blob_token",
]

log = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 0.5  # waits 0.5 s, then 1 s, ... between attempts
_TOKEN_SALT = "eventpipe.blob-url"


class BlobStore(Protocol):
    async def put(self, name: str, data: bytes, content_type: str) -> str:
        """Store `data` under `name`; return the URL a client fetches it from."""
        ...

    async def close(self) -> None: ...


class BlobNameError(ValueError):
    """A name that could leave the store: absolute, with `..`, empty parts, odd characters."""


class BlobUploadError(RuntimeError):
    """An upload that failed on every attempt."""


class BlobTokenError(Exception):
    """A local blob URL's token that does not grant access."""


class BlobTokenInvalid(BlobTokenError):
    """Not signed with our key, or signed for another name."""


class BlobTokenExpired(BlobTokenError):
    """Signed by us, for this name, but past its expiry."""


# ---------------------------------------------------------------- names and tokens

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def check_blob_name(name: str) -> str:
    """The name if it stays inside the store: relative parts of [A-Za-z0-9._-], no `..`."""
    parts = name.split("/")
    if not name or len(name) > 512 or any(
            part in ("", ".", "..") or not set(part) <= _NAME_CHARS for part in parts):
        raise BlobNameError(f"not a blob name: {name[:100]!r}")
    return name


def blob_path(settings: Settings, name: str) -> Path:
    """The file of a local blob; never outside BLOB_DIR (symbolic links included)."""
    root = Path(settings.blob_dir).resolve()
    path = (root / check_blob_name(name)).resolve()
    if not path.is_relative_to(root):
        raise BlobNameError(f"not a blob name: {name[:100]!r}")
    return path


def _serializer(settings: Settings) -> URLSafeSerializer:
    return URLSafeSerializer(settings.blob_signing_key, salt=_TOKEN_SALT)


def sign_blob_name(settings: Settings, name: str, ttl_seconds: int | None = None) -> str:
    """A token granting read access to `name` until now + ttl (BLOB_URL_TTL_SECONDS)."""
    ttl = settings.blob_url_ttl_seconds if ttl_seconds is None else ttl_seconds
    return _serializer(settings).dumps([name, int(time.time()) + ttl])


def verify_blob_token(settings: Settings, name: str, token: str) -> int:
    """The seconds the token has left; raises BlobTokenInvalid or BlobTokenExpired."""
    try:
        signed_name, expires = _serializer(settings).loads(token)
    except (BadSignature, TypeError, ValueError) as exc:
        raise BlobTokenInvalid("the link's signature is not valid") from exc
    if signed_name != name or not isinstance(expires, int):
        raise BlobTokenInvalid("the link was signed for another image")
    left = expires - int(time.time())
    if left <= 0:
        raise BlobTokenExpired(f"the link expired {-left} s ago")
    return left


# ---------------------------------------------------------------- retries


def _azure_transient(exc: BaseException) -> bool:
    """Worth another try: no connection or no answer, a timeout, a 408/429/5xx. Not a 403
    (a wrong key) or a 400: those fail however often they are tried."""
    if isinstance(exc, HttpResponseError):
        return exc.status_code is None or exc.status_code in (408, 429) or exc.status_code >= 500
    return isinstance(exc, ServiceRequestError | ServiceResponseError | TimeoutError)


def _local_transient(exc: BaseException) -> bool:
    return isinstance(exc, OSError)  # e.g. a full or briefly unmounted disk


def _retrying(attempts: int, base_seconds: float,
              retryable: Callable[[BaseException], bool]) -> AsyncRetrying:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("blob upload attempt %d of %d failed (%s: %s); retrying in %.1f s",
                    state.attempt_number, attempts, type(exc).__name__, exc,
                    state.upcoming_sleep)

    return AsyncRetrying(stop=stop_after_attempt(attempts),
                         wait=wait_exponential(multiplier=base_seconds, max=30),
                         retry=retry_if_exception(retryable), before_sleep=before_sleep,
                         reraise=True)


async def _with_retries(retrying: AsyncRetrying, name: str,
                        upload: Callable[[], Awaitable[None]]) -> None:
    try:
        async for attempt in retrying:
            with attempt:
                await upload()
    except Exception as exc:
        tried = retrying.statistics.get("attempt_number", 1)
        raise BlobUploadError(f"upload of {name} failed after {tried} attempt(s): "
                              f"{type(exc).__name__}: {exc}") from exc


# ---------------------------------------------------------------- the local store


class LocalBlobStore:
    """Files under BLOB_DIR; URLs to the API's /blobs route, signed and expiring."""

    def __init__(self, settings: Settings, retry_base_seconds: float = RETRY_BASE_SECONDS,
                 ) -> None:
        self.settings = settings
        self.retry_base_seconds = retry_base_seconds

    def url(self, name: str) -> str:
        token = sign_blob_name(self.settings, name)
        return f"{self.settings.public_base_url.rstrip('/')}/blobs/{quote(name)}?token={token}"

    async def put(self, name: str, data: bytes, content_type: str) -> str:
        path = blob_path(self.settings, name)
        retrying = _retrying(self.settings.blob_upload_attempts, self.retry_base_seconds,
                             _local_transient)
        await _with_retries(retrying, name, lambda: asyncio.to_thread(_write_atomic, path, data))
        return self.url(name)

    async def close(self) -> None:
        return None


def _write_atomic(path: Path, data: bytes) -> None:
    """A reader sees the old file or the whole new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide it from an API run as another user
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------- Azure Blob Storage


class AzureBlobStore:
    """A private container; each blob's URL carries a read-only SAS that expires."""

    def __init__(self, settings: Settings, retry_base_seconds: float = RETRY_BASE_SECONDS,
                 ) -> None:
        if not settings.azure_storage_connection_string:
            raise ValueError("BLOB_STORE=azure needs AZURE_STORAGE_CONNECTION_STRING")
        self.settings = settings
        self.retry_base_seconds = retry_base_seconds
        # retry_total=0: our tenacity policy is the one that retries.
        self.client = BlobServiceClient.from_connection_string(
            settings.azure_storage_connection_string, retry_total=0)
        key = getattr(self.client.credential, "account_key", None)
        if not key:
            raise ValueError("AZURE_STORAGE_CONNECTION_STRING has no AccountKey to sign SAS "
                             "URLs with")
        self._account_key: str = key
        self.container = self.client.get_container_client(settings.azure_container)
        self._container_ready = False

    async def _ensure_container(self) -> None:
        if self._container_ready:
            return
        try:
            await self.container.create_container()  # no public_access: private
        except ResourceExistsError:
            access = (await self.container.get_container_access_policy()).get("public_access")
            if access:
                raise BlobUploadError(
                    f"container {self.settings.azure_container} allows public access "
                    f"({access}); images must be reachable only through their SAS") from None
        self._container_ready = True

    def sas_url(self, name: str) -> str:
        now = datetime.now(UTC)
        sas = generate_blob_sas(
            account_name=self.client.account_name or "",
            container_name=self.settings.azure_container,
            blob_name=name,
            account_key=self._account_key,
            permission=BlobSasPermissions(read=True),
            start=now - timedelta(minutes=5),  # a client whose clock is a little behind
            expiry=now + timedelta(seconds=self.settings.blob_url_ttl_seconds),
            protocol="https" if self.container.scheme == "https" else "https,http",
        )
        return f"{self.container.get_blob_client(name).url}?{sas}"

    async def put(self, name: str, data: bytes, content_type: str) -> str:
        check_blob_name(name)

        async def upload() -> None:
            await self._ensure_container()
            await self.container.upload_blob(
                name, data, overwrite=True,
                content_settings=ContentSettings(content_type=content_type))

        retrying = _retrying(self.settings.blob_upload_attempts, self.retry_base_seconds,
                             _azure_transient)
        await _with_retries(retrying, name, upload)
        return self.sas_url(name)

    async def close(self) -> None:
        await self.client.close()


def blob_store_for(settings: Settings) -> BlobStore:
    if settings.blob_store == "azure":
        return AzureBlobStore(settings)
    return LocalBlobStore(settings)
