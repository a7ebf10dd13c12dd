"""The auto-draft rule (M2.5) on messages of either provider."""

from __future__ import annotations

from typing import Any

from activities.importance import is_important
from integrations.mailbox import MailboxMessage


def message(**changes: Any) -> MailboxMessage:
    fields: dict[str, Any] = {
        "provider_message_id": "m-1",
        "thread_id": None,
        "subject": "Lunch",
        "from_address": "friend@example.com",
        "received_at": None,
        "importance": "normal",
        "snippet": "see you",
    }
    return MailboxMessage(**{**fields, **changes})


def test_importance_rule() -> None:
    assert not is_important(message())
    assert is_important(message(labels=["IMPORTANT"]))  # Gmail's label
    assert is_important(message(importance="high"))  # Graph's importance
    assert is_important(message(subject="Invoice overdue"))
    assert is_important(message(snippet="need it ASAP please"))
    assert not is_important(message(subject="Invoices2go newsletter"))  # whole words only


def test_vip_senders_are_compared_without_case() -> None:
    vips = frozenset({"vip@x.example"})
    assert is_important(message(from_address="VIP@x.example"), vip_senders=vips)
    assert not is_important(message(), vip_senders=vips)
