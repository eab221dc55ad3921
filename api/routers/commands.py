"""The outcome of a command, for clients that got a 202."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter

from api.auth import CurrentUser
from api.errors import ApiError
from api.models import COMMON_RESPONSES, ErrorBody
from api.services import ServicesDep

router = APIRouter(prefix="/api/events/commands", tags=["commands"], responses={
    **COMMON_RESPONSES,
})


@router.get("/{commandId}", responses={404: {"model": ErrorBody, "description": "COMMAND_001"}})
async def command_outcome(commandId: uuid.UUID, user: CurrentUser,
                          services: ServicesDep) -> dict[str, Any]:
    """ACCEPTED, or REJECTED with the code and message the command would have answered."""
    outcome = await services.waiter.read(str(commandId))
    if outcome is None or outcome.user_id != user:
        raise ApiError("COMMAND_001", "명령을 찾을 수 없습니다 (아직 처리 중일 수 있습니다)",
                       status=404)
    return {"commandId": outcome.command_id, "eventId": outcome.event_id,
            "commandType": outcome.command_type, "status": outcome.status,
            "code": outcome.code, "message": outcome.message, "details": outcome.details}
