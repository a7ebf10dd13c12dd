"""Vapi server messages (providers.md 4): ``POST /v1/providers/vapi/messages``.

Vapi sends each message once and waits up to 20 s, so the endpoint checks the shared
secret (``X-Vapi-Secret``, or ``Authorization: Bearer``), answers 200 at once, and then,
after the response, records the call's live status and signals its job (``call_update``,
ids and status only). The job confirms with ``GET /call/{id}`` before it acts, and keeps
polling, so a lost or forged message changes nothing that the poll would not.
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from temporalio.service import RPCError

from core.logging import get_logger
from core.signals import CALL_UPDATE, CallUpdate

log = get_logger("jobs.api.vapi")

router = APIRouter()
PATH = "/v1/providers/vapi/messages"
_MESSAGE_TYPES = ("status-update", "end-of-call-report")


def _given_secret(request: Request) -> str:
    secret = request.headers.get("x-vapi-secret")
    if secret:
        return secret
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" else ""


def _call_update(body: Any) -> CallUpdate | None:
    """The call id and status a message carries, if it is one the jobs follow."""
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, dict) or message.get("type") not in _MESSAGE_TYPES:
        return None
    call = message.get("call")
    call_id = call.get("id") if isinstance(call, dict) else None
    if not isinstance(call_id, str) or not call_id:
        return None
    status = "ended" if message["type"] == "end-of-call-report" else message.get("status")
    return CallUpdate(vapi_call_id=call_id, status=str(status or "unknown"))


async def _forward(request: Request, update: CallUpdate) -> None:
    services = request.app.state.services
    try:
        job_id = await services.calls.set_status(update.vapi_call_id, update.status)
    except SQLAlchemyError as exc:
        log.warning("vapi.message_not_recorded", error=type(exc).__name__)
        return
    if job_id is None:
        # Not placed by us, or the placing job has not recorded it yet: its poll will see it.
        log.info("vapi.message_for_unknown_call", vapi_call_id=update.vapi_call_id)
        return
    try:
        await services.temporal.get_workflow_handle(job_id).signal(CALL_UPDATE, update)
    except RPCError as exc:
        # The job has ended already (or was removed); nothing to tell it.
        log.info("vapi.signal_not_delivered", job_id=job_id, status=exc.status.name)


@router.post(PATH)
async def vapi_message(request: Request, background: BackgroundTasks) -> JSONResponse:
    secret = request.app.state.services.settings.vapi_server_secret
    if not secret:
        return JSONResponse({"detail": "VAPI_SERVER_SECRET is not set"}, 503)
    if not hmac.compare_digest(_given_secret(request).encode(), secret.encode()):
        return JSONResponse({"detail": "bad or missing X-Vapi-Secret"}, 401)
    try:
        body = await request.json()
    except ValueError:
        return JSONResponse({"detail": "the body must be JSON"}, 400)
    update = _call_update(body)
    if update is not None:
        background.add_task(_forward, request, update)
    return JSONResponse({"received": True})
