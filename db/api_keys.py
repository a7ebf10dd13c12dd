"""Keys of the HTTP API (NFR-032): ``bbk_<id>_<secret>``, shown once when created.

Only a SHA-256 of the secret is stored (the secret is 32 random bytes, so a fast hash is
enough: there is nothing to guess); a key is found by its public id and compared in constant
time. A revoked key stays listed, and never works again.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.models import API_ROLES, ApiKey
from db.session import rowcount

PREFIX = "bbk_"


class KeyInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    user_id: str
    role: str
    name: str
    created_at: datetime
    revoked_at: datetime | None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_key(key: str) -> tuple[str, str] | None:
    """The (id, secret) of a well-formed key, else None."""
    if not key.startswith(PREFIX):
        return None
    key_id, sep, secret = key[len(PREFIX) :].partition("_")
    if not sep or not key_id or not secret or len(key_id) > 32:
        return None
    return key_id, secret


class ApiKeyStore:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def create(self, user_id: str, role: str, *, name: str = "") -> tuple[KeyInfo, str]:
        """A new key for ``user_id`` with ``role``: its record and the key itself (the only
        time it is seen)."""
        if role not in API_ROLES:
            raise ValueError(f"role: must be one of {', '.join(API_ROLES)}")
        if not user_id.strip():
            raise ValueError("user: must not be empty")
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        row = ApiKey(
            id=key_id,
            secret_hash=_hash(secret),
            user_id=user_id.strip(),
            role=role,
            name=name[:100],
            created_at=utcnow(),
        )
        async with self._sessionmaker() as session, session.begin():
            session.add(row)
        return KeyInfo.model_validate(row, from_attributes=True), f"{PREFIX}{key_id}_{secret}"

    async def verify(self, key: str) -> KeyInfo | None:
        """The key's record if it is a live key, else None."""
        parsed = parse_key(key)
        if parsed is None:
            return None
        key_id, secret = parsed
        async with self._sessionmaker() as session:
            row = await session.get(ApiKey, key_id)
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(row.secret_hash, _hash(secret)):
            return None
        return KeyInfo.model_validate(row, from_attributes=True)

    async def list(self, *, user_id: str | None = None) -> list[KeyInfo]:
        query = select(ApiKey).order_by(ApiKey.created_at)
        if user_id is not None:
            query = query.where(ApiKey.user_id == user_id)
        async with self._sessionmaker() as session:
            rows = await session.scalars(query)
            return [KeyInfo.model_validate(row, from_attributes=True) for row in rows]

    async def revoke(self, key_id: str) -> bool:
        """Revoke a key by its id; whether a live key was revoked."""
        async with self._sessionmaker() as session, session.begin():
            result = await session.execute(
                update(ApiKey)
                .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            return rowcount(result) > 0
