"""Deleting what no job can need any more: expired job-id dedup keys, job secrets and stored
job inputs.

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
from db.job_inputs import JobInputStore
from db.secrets import SecretStore

log = get_logger("jobs.housekeeping")

EVERY_S = 3600.0
BATCH = 1000


async def purge_once(
    keys: JobKeyStore, secrets: SecretStore, inputs: JobInputStore
) -> tuple[int, int, int]:
    """Delete every expired key, secret and job input, a batch at a time: the counts."""
    batches = (
        (keys.purge_expired, BATCH),
        (secrets.purge_expired, BATCH),
        (inputs.purge_expired, 10),
    )
    counts = [0, 0, 0]
    for i, (purge, batch) in enumerate(batches):
        while True:
            deleted = await purge(batch)
            counts[i] += deleted
            if deleted < batch:
                break
    return counts[0], counts[1], counts[2]


async def housekeeping_loop(sessions: async_sessionmaker[AsyncSession], key: bytes) -> None:
    keys, secrets = JobKeyStore(sessions), SecretStore(sessions, TokenCipher(key), key)
    inputs = JobInputStore(sessions)
    # Workers started together do not all start at once.
    await asyncio.sleep(random.uniform(0, 60))
    while True:
        try:
            dedup_keys, job_secrets, job_inputs = await purge_once(keys, secrets, inputs)
            if dedup_keys or job_secrets or job_inputs:
                log.info(
                    "housekeeping.purged",
                    dedup_keys=dedup_keys,
                    job_secrets=job_secrets,
                    job_inputs=job_inputs,
                )
        except (SQLAlchemyError, OSError) as exc:
            log.warning("housekeeping.failed", error=type(exc).__name__)
        await asyncio.sleep(EVERY_S)
