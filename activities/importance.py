"""The auto-draft rule (M2.5): which newly synced messages are high-importance."""

from __future__ import annotations

import re

# Words that make a message high-importance (case-insensitive, whole words).
IMPORTANT_KEYWORDS = ("urgent", "asap", "immediately", "deadline", "contract", "invoice")


def is_important(
    *,
    labels: list[str],
    importance: str | None,
    subject: str,
    snippet: str,
    sender: str | None = None,
    vip_senders: frozenset[str] = frozenset(),
) -> bool:
    """A sender in the user's VIP list, Gmail's IMPORTANT label, Graph's high importance, or
    a keyword from IMPORTANT_KEYWORDS in subject or preview."""
    if sender is not None and sender.lower() in vip_senders:
        return True
    if "IMPORTANT" in labels or importance == "high":
        return True
    words = set(re.findall(r"[a-z]+", f"{subject} {snippet}".lower()))
    return any(keyword in words for keyword in IMPORTANT_KEYWORDS)
