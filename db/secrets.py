"""Secrets that jobs need (webhook signing secrets), kept out of Temporal history.

A producer's secret is stored here, encrypted at rest (``TokenCipher``, bound to its row),
and the job's data carries only its id; the activity reads the secret back when it needs
it. Nothing secret enters a workflow input, result, heartbeat, memo or search attribute,
encrypted or not, so no one who can read (or decode) history can read a secret.

The id is a keyed hash of the owner and the secret, so the many jobs that use one
endpoint's secret share one row, and a producer that stored it lately needs no database
round trip for the next job. A row is kept until no job can still need it: ``needed_until``
covers the job's start delay, its run and the time it can be retried by hand.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.crypto import TokenCipher
from db.base import utcnow
from db.models import JobSecret
from db.session import delete_expired, dialect_insert

# Entries kept in memory per process (ids a producer stored, secrets a worker read).
CACHE_SIZE = 1024
# A producer re-extends a secret's life in the database at most this often.
TOUCH_EVERY_S = 3600.0


class SecretNotFound(LookupError):
    def __init__(self, secret_id: str) -> None:
        super().__init__(f"no job secret with id {secret_id!r} (of this user)")


class SecretStore:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], cipher: TokenCipher, key: bytes
    ) -> None:
        self._sessionmaker = sessionmaker
        self._cipher = cipher
        self._id_key = hmac.new(key, b"job-secret-id", hashlib.sha256).digest()
        # id -> (needed_until stored, monotonic time of that write)
        self._stored: OrderedDict[str, tuple[datetime, float]] = OrderedDict()
        # id -> (user id, plaintext)
        self._read: OrderedDict[str, tuple[str, str]] = OrderedDict()

    def secret_id(self, user_id: str, value: str) -> str:
        digest = hmac.new(self._id_key, f"{user_id}\0{value}".encode(), hashlib.sha256)
        return "sec_" + digest.hexdigest()[:40]

    async def put(self, user_id: str, value: str, *, needed_for: timedelta) -> str:
        """Store ``value`` for ``user_id`` (idempotent) and keep it at least ``needed_for``."""
        secret_id = self.secret_id(user_id, value)
        needed_until = utcnow() + needed_for
        cached = self._stored.get(secret_id)
        if cached is not None:
            until, at = cached
            if until >= needed_until - timedelta(seconds=TOUCH_EVERY_S) and (
                time.monotonic() - at < TOUCH_EVERY_S
            ):
                self._stored.move_to_end(secret_id)
                return secret_id
        now = utcnow()
        async with self._sessionmaker() as session, session.begin():
            insert = dialect_insert(session, JobSecret).values(
                id=secret_id,
                user_id=user_id,
                ciphertext=self._cipher.encrypt(value, bound_to=secret_id),
                created_at=now,
                needed_until=needed_until,
            )
            await session.execute(
                insert.on_conflict_do_update(
                    index_elements=[JobSecret.id],
                    set_={"needed_until": insert.excluded.needed_until},
                    where=JobSecret.needed_until < insert.excluded.needed_until,
                )
            )
        self._remember(self._stored, secret_id, (needed_until, time.monotonic()))
        return secret_id

    async def get(self, secret_id: str, *, user_id: str) -> str:
        """The secret, if it belongs to ``user_id``; SecretNotFound otherwise."""
        cached = self._read.get(secret_id)
        if cached is None:
            async with self._sessionmaker() as session:
                row = await session.get(JobSecret, secret_id)
                if row is None:
                    raise SecretNotFound(secret_id)
                cached = (row.user_id, self._cipher.decrypt(row.ciphertext, bound_to=row.id))
            self._remember(self._read, secret_id, cached)
        owner, value = cached
        # Another user's id must not sign this user's requests.
        if owner != user_id:
            raise SecretNotFound(secret_id)
        return value

    async def purge_expired(self, limit: int = 1000) -> int:
        """Delete up to ``limit`` secrets no job can need any more; how many went."""
        return await delete_expired(
            self._sessionmaker, JobSecret.id, JobSecret.needed_until, limit=limit
        )

    @staticmethod
    def _remember(cache: OrderedDict[str, Any], key: str, value: Any) -> None:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > CACHE_SIZE:
            cache.popitem(last=False)
