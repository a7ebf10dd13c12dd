"""The auto-draft rule (M2.5): which newly synced messages are high-importance."""

from __future__ import annotations

import re

from integrations.mailbox import MailboxMessage

# Words that make a message high-importance (case-insensitive, whole words).
IMPORTANT_KEYWORDS = ("urgent", "asap", "immediately", "deadline", "contract", "invoice")


def is_important(message: MailboxMessage, vip_senders: frozenset[str] = frozenset()) -> bool:
    """A sender in the user's VIP list, Gmail's IMPORTANT label, Graph's high importance, or
    a keyword from IMPORTANT_KEYWORDS in subject or preview."""
    sender = message.from_address
    if sender is not None and sender.lower() in vip_senders:
        return True
    if "IMPORTANT" in message.labels or message.importance == "high":
        return True
    words = set(re.findall(r"[a-z]+", f"{message.subject} {message.snippet}".lower()))
    return any(keyword in words for keyword in IMPORTANT_KEYWORDS)
