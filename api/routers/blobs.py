"""The local blob store's images, served to whoever holds a signed link (like a SAS URL).

No JWT: the token in the link is the credential, and it carries its own expiry (7 days by
default). A wrong or expired token is 403 `BLOB_001`; a name that cannot be in the store or
a file that is not there is 404 `BLOB_002`.
"""

from __future__ import annotations

import asyncio
import mimetypes
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from api.errors import ApiError
from api.models import ErrorBody
from api.services import ServicesDep
from streams.vocabulary import ErrorCode
from workers.blobstore import (
    BlobNameError,
    BlobTokenExpired,
    BlobTokenInvalid,
    blob_path,
    verify_blob_token,
)

__all__ = ["router"]

router = APIRouter(prefix="/blobs", tags=["images"])


@router.get("/{name:path}", response_class=FileResponse, responses={
    200: {"content": {"image/png": {}}, "description": "the image"},
    403: {"model": ErrorBody, "description": "BLOB_001: the link is wrong or has expired"},
    404: {"model": ErrorBody, "description": "BLOB_002: no such image"},
})
async def get_blob(name: str, services: ServicesDep,
                   token: Annotated[str, Query(description="the link's signature")] = "",
                   ) -> FileResponse:
    """An image of the local blob store, through the signed link the content worker made."""
    settings = services.settings
    try:
        path = blob_path(settings, name)
    except BlobNameError:
        raise ApiError(ErrorCode.BLOB_002) from None
    try:
        seconds_left = verify_blob_token(settings, name, token)
    except BlobTokenExpired:
        raise ApiError(ErrorCode.BLOB_001, "이미지 링크가 만료되었습니다") from None
    except BlobTokenInvalid:
        raise ApiError(ErrorCode.BLOB_001) from None
    if not await asyncio.to_thread(path.is_file):
        raise ApiError(ErrorCode.BLOB_002)
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    # A blob never changes under its name: a browser may keep it while the link is valid,
    # but no shared cache may (the link is the credential).
    return FileResponse(path, media_type=media_type, headers={
        "Cache-Control": f"private, max-age={seconds_left}, immutable"})
