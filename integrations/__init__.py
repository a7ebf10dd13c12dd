"""Clients of external systems (HTTP side only, no Temporal imports)."""
