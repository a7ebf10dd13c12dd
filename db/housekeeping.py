"""Deleting what no job can need any more: expired job-id dedup keys and job secrets.

Every worker runs this hourly; the deletes are idempotent and bounded (1,000 rows a
transaction), so workers running it at once only share the work.
"""

from __future__ import annotations

import asyncio
import random

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.crypto import TokenCipher
from core.logging import get_logger
from db.dedup import JobKeyStore
from db.secrets import SecretStore

log = get_logger("jobs.housekeeping")

EVERY_S = 3600.0
BATCH = 1000


async def purge_once(keys: JobKeyStore, secrets: SecretStore) -> tuple[int, int]:
    """Delete every expired key and secret, a batch at a time: (keys, secrets) deleted."""
    counts = [0, 0]
    for i, purge in enumerate((keys.purge_expired, secrets.purge_expired)):
        while True:
            deleted = await purge(BATCH)
            counts[i] += deleted
            if deleted < BATCH:
                break
    return counts[0], counts[1]


async def housekeeping_loop(sessions: async_sessionmaker[AsyncSession], key: bytes) -> None:
    keys, secrets = JobKeyStore(sessions), SecretStore(sessions, TokenCipher(key), key)
    # Workers started together do not all start at once.
    await asyncio.sleep(random.uniform(0, 60))
    while True:
        try:
            dedup_keys, job_secrets = await purge_once(keys, secrets)
            if dedup_keys or job_secrets:
                log.info("housekeeping.purged", dedup_keys=dedup_keys, job_secrets=job_secrets)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("housekeeping.failed", error=type(exc).__name__)
        await asyncio.sleep(EVERY_S)
