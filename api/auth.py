"""Who is calling: a bearer API key (``db/api_keys.py``) bound to a user and a role.

No key or a bad key answers 401. A ``user`` key sees and acts on its own user's jobs only
(another user's job id answers 404, as if it did not exist); queue-wide operations need an
``operator`` key (403 otherwise). Verified keys are remembered for ``KEY_CACHE_S`` seconds,
so a revoked key stops working within that time.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from client.queue import JobQueue
from db.api_keys import ApiKeyStore, KeyInfo

KEY_CACHE_S = 5.0
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="jobs"'}


@dataclass(frozen=True, slots=True)
class Caller:
    user_id: str
    role: str
    key_id: str

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"

    def owner_filter(self) -> str | None:
        """The user whose jobs this caller may see (None: every user's)."""
        return None if self.is_operator else self.user_id


class KeyCheck:
    """Verifies bearer keys, remembering recent answers (good and bad) for a few seconds."""

    def __init__(self, keys: ApiKeyStore) -> None:
        self._keys = keys
        self._seen: dict[str, tuple[float, KeyInfo | None]] = {}
        # One database lookup per key at a time: when the remembered answer expires under
        # load, the callers of that moment share one query instead of queueing a hundred.
        self._looking: dict[str, asyncio.Future[KeyInfo | None]] = {}

    async def caller(self, authorization: str | None) -> Caller:
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise HTTPException(
                401, "an API key is required: Authorization: Bearer <key>", headers=_CHALLENGE
            )
        key = key.strip()
        now = time.monotonic()
        cached = self._seen.get(key)
        if cached is not None and now - cached[0] < KEY_CACHE_S:
            info = cached[1]
        else:
            info = await self._lookup(key)
        if info is None:
            raise HTTPException(401, "the API key is not valid", headers=_CHALLENGE)
        return Caller(user_id=info.user_id, role=info.role, key_id=info.id)

    async def _lookup(self, key: str) -> KeyInfo | None:
        pending = self._looking.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[KeyInfo | None] = asyncio.get_running_loop().create_future()
        self._looking[key] = future
        try:
            info = await self._keys.verify(key)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: the waiters, if any, get it raised
            raise
        finally:
            self._looking.pop(key, None)
        future.set_result(info)
        if len(self._seen) > 10_000:
            self._seen.clear()
        self._seen[key] = (time.monotonic(), info)
        return info


def job_queue(request: Request) -> JobQueue:
    """The app's connections to Temporal, Redis and the database (``api.app.Services``)."""
    queue: JobQueue = request.app.state.services.queue
    return queue


async def require_caller(request: Request) -> Caller:
    check: KeyCheck = request.app.state.services.key_check
    return await check.caller(request.headers.get("authorization"))


async def require_operator(caller: Annotated[Caller, Depends(require_caller)]) -> Caller:
    if not caller.is_operator:
        raise HTTPException(403, "this operation needs an operator key")
    return caller


CallerDep = Annotated[Caller, Depends(require_caller)]
OperatorDep = Annotated[Caller, Depends(require_operator)]
