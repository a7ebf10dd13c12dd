"""Deleting what no job can need any more: expired job-id dedup keys, job secrets and stored
job inputs, and browser workflow executions (with their screenshots) past their retention.

The HOUSEKEEPING job runs this on its schedule (core/schedules.py, hourly by default); the
deletes are idempotent and bounded (1,000 rows a transaction), so two runs at once only share
the work.
"""

from __future__ import annotations

from datetime import datetime

from db.browser import ExecutionStore
from db.dedup import JobKeyStore
from db.job_inputs import JobInputStore
from db.secrets import SecretStore

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


async def purge_executions(executions: ExecutionStore, finished_before: datetime) -> int:
    """Delete every browser workflow execution that finished before the cutoff, in batches."""
    total = 0
    while True:
        deleted = await executions.purge_finished(finished_before, BATCH)
        total += deleted
        if deleted < BATCH:
            return total
