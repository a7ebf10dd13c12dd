"""Deleting what no job can need any more: expired job-id dedup keys, job secrets and stored
job inputs, browser workflow executions (with their screenshots) past their retention, and
analysis reports, uploaded ad data files and abandoned crawl pages past theirs.

The HOUSEKEEPING job runs this on its schedule (core/schedules.py, hourly by default); the
deletes are idempotent and bounded (1,000 rows a transaction), so two runs at once only share
the work.
"""

from __future__ import annotations

from datetime import datetime

from db.ads import AdFileStore
from db.browser import ExecutionStore
from db.dedup import JobKeyStore
from db.job_inputs import JobInputStore
from db.reports import ReportStore
from db.secrets import SecretStore
from db.seo import CrawlPageStore

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


async def purge_analysis(
    reports: ReportStore,
    files: AdFileStore,
    pages: CrawlPageStore,
    *,
    stored_before: datetime,
    crawled_before: datetime,
) -> int:
    """Delete reports and ad data files stored before ``stored_before`` and the pages of
    crawls started before ``crawled_before`` (a finished crawl has none left), in batches."""
    total = 0
    for purge, cutoff in (
        (reports.purge_before, stored_before),
        (files.purge_before, stored_before),
        (pages.purge_before, crawled_before),
    ):
        while True:
            deleted = await purge(cutoff, BATCH)
            total += deleted
            if deleted < BATCH:
                break
    return total
