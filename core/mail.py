"""A mailbox message as the email jobs see it, whichever provider it comes from."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class MailMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    provider_message_id: str
    thread_id: str | None
    subject: str
    from_address: str | None
    received_at: datetime | None
    labels: list[str] = []
    snippet: str = ""
