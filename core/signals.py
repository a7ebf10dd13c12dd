"""Signals that reach running jobs: their names and payloads, shared by the senders (the HTTP
API, other jobs) and the workflows that receive them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

# A Vapi server message said something about a VOICE_CALL job's call.
CALL_UPDATE = "call_update"
# A slot of a concurrency pool (db/slots.py) was given back: a waiting job asks again now.
SLOT_FREED = "slot_freed"


class CallUpdate(BaseModel):
    """Only the ids and the status travel; the workflow reads the rest from Vapi."""

    model_config = ConfigDict(frozen=True)

    vapi_call_id: str
    status: str
