"""What every part of the job API shares: the job handles it returns and the connections,
catalog and stores of one ``JobQueue``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis.exceptions import RedisError
from temporalio.client import Client, WorkflowExecutionDescription
from temporalio.service import RPCError, RPCStatusCode

from core.config import Settings
from core.errors import UnknownJobType, UnknownQueue
from core.jobs import JobData, JobType, WorkflowExecutionJobData
from core.queues import QueueName, QueueSpec
from db.ads import AdActionStore, AdFileStore
from db.browser import BrowserWorkflowStore, ExecutionStore
from db.dead_letters import DeadLetterStore
from db.dedup import JobKeyStore
from db.email import EmailAccountStore
from db.enrichment import EnrichmentStore
from db.job_inputs import JobInputStore
from db.reports import ReportStore
from db.secrets import SecretStore
from db.voice import CallStore
from tracking.store import JobState, JobTracker


@dataclass(frozen=True, slots=True)
class Job:
    """Handle of an enqueued job."""

    id: str
    queue: str
    type: JobType
    run_id: str | None = None
    deduplicated: bool = False


@dataclass(frozen=True, slots=True)
class JobInfo:
    """A job's state as seen by producers and operators."""

    id: str
    queue: str
    type: str
    state: JobState
    progress: int
    attempts_made: int
    result: Any
    failure_reason: str | None
    added_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    user_id: str | None = None


class QueueBase:
    """The state of one ``JobQueue`` and the lookups every operation needs."""

    def __init__(
        self,
        client: Client,
        settings: Settings,
        *,
        tracker: JobTracker | None,
        job_keys: JobKeyStore | None,
        catalog: Mapping[QueueName, QueueSpec],
        accounts: EmailAccountStore | None = None,
        secrets: SecretStore | None = None,
        calls: CallStore | None = None,
        inputs: JobInputStore | None = None,
        enrichment: EnrichmentStore | None = None,
        dead_letters: DeadLetterStore | None = None,
        browser_workflows: BrowserWorkflowStore | None = None,
        executions: ExecutionStore | None = None,
        reports: ReportStore | None = None,
        ad_files: AdFileStore | None = None,
        ad_actions: AdActionStore | None = None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.catalog = dict(catalog)
        self.tracker = tracker
        self.job_keys = job_keys
        self.accounts = accounts
        self.secrets = secrets
        self.calls = calls
        self.inputs = inputs
        self.enrichment = enrichment
        self.dead_letters = dead_letters
        self.browser_workflows = browser_workflows
        self.executions = executions
        self.reports = reports
        self.ad_files = ad_files
        self.ad_actions = ad_actions
        self._closers: list[Callable[[], Awaitable[None]]] = []

    async def _pin_browser_workflow(
        self,
        data: WorkflowExecutionJobData,  # noqa: ARG002 - implemented by client.browser
    ) -> WorkflowExecutionJobData:
        """Checks a browser job's saved workflow (``client.browser`` implements it)."""
        raise RuntimeError("this JobQueue cannot check browser workflows")

    async def _check_ad_file(self, data: JobData) -> None:  # noqa: ARG002 - client.analysis
        """Refuses an ad job whose uploaded file is not the user's (``client.analysis``)."""
        raise RuntimeError("this JobQueue cannot check ad data files")

    @staticmethod
    def _queue(name: object) -> QueueName:
        try:
            return QueueName(str(name))
        except ValueError:
            raise UnknownQueue(name, [q.value for q in QueueName]) from None

    @staticmethod
    def _job_type(name: object) -> JobType:
        try:
            return JobType(str(name))
        except ValueError:
            raise UnknownJobType(name, [t.value for t in JobType]) from None

    async def _record(self, job_id: str) -> dict[str, str] | None:
        """The job's Redis record, or None when Redis has none or cannot answer."""
        if self.tracker is None or not self.tracker.reachable:
            return None
        try:
            return await self.tracker.job(job_id)
        except (RedisError, OSError):
            return None

    async def _describe(self, job_id: str) -> WorkflowExecutionDescription | None:
        try:
            return await self.client.get_workflow_handle(job_id).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
