"""The producer-facing job API (PRD-036 appendix B) over Temporal and the Redis adapter.

A job is a workflow execution whose id is the job id; its queue is the task queue of the
same name. Redis holds the job records and statistics for fast reads; Temporal stays the
source of truth and answers when Redis cannot. Each part of the API has its own module:
``enqueue``, ``reads``, ``stats``, ``operations``, ``mailboxes``, ``calls``, ``enrichment``,
``schedules``, ``dead_letters``, ``browser`` and ``analysis``.
"""

from __future__ import annotations

from collections.abc import Mapping

from redis.exceptions import RedisError

from client.analysis import Analysis
from client.browser import BrowserWorkflows
from client.calls import Calls
from client.dead_letters import DeadLetters
from client.enqueue import Enqueue
from client.enrichment import Enrichment
from client.mailboxes import Mailboxes
from client.operations import Operations
from client.reads import Reads
from client.schedules import Schedules
from client.stats import Stats
from core import temporal
from core.config import Settings, get_settings
from core.crypto import TokenCipher, token_key
from core.logging import get_logger
from core.queues import QueueName, QueueSpec, load_catalog
from db.ads import AdActionStore, AdFileStore
from db.browser import BrowserWorkflowStore, ExecutionStore
from db.dead_letters import DeadLetterStore
from db.dedup import JobKeyStore
from db.email import EmailAccountStore
from db.enrichment import EnrichmentStore
from db.job_inputs import JobInputStore
from db.reports import ReportStore
from db.schema import ensure_schema
from db.secrets import SecretStore
from db.session import create_engine, create_sessionmaker
from db.voice import CallStore
from tracking.store import JobTracker, connect_redis

log = get_logger("jobs.client")


class JobQueue(
    Enqueue,
    Reads,
    Stats,
    Operations,
    Mailboxes,
    Calls,
    Enrichment,
    Schedules,
    DeadLetters,
    BrowserWorkflows,
    Analysis,
):
    """All queue operations; module-level functions (``client.api``) use one shared instance."""

    @classmethod
    async def connect(
        cls,
        settings: Settings | None = None,
        *,
        catalog: Mapping[QueueName, QueueSpec] | None = None,
    ) -> JobQueue:
        """A queue with its own Temporal, Redis and database connections (close() them).

        The database schema is brought to head first (``SchemaNotReady`` names the command
        to run when ``DB_MIGRATE_ON_START=false`` and it is behind).
        """
        settings = settings or get_settings()
        catalog = dict(catalog) if catalog is not None else load_catalog()
        engine = create_engine(settings.database_url)
        try:
            await ensure_schema(engine, settings.database_url, migrate=settings.db_migrate_on_start)
            client = await temporal.connect(settings)
            # Jobs carry their owner as a search attribute: a producer that starts before any
            # worker ever ran must find it registered.
            await temporal.ensure_search_attributes(client, settings.temporal_namespace)
        except BaseException:
            await engine.dispose()
            raise
        redis = connect_redis(settings)
        sessions = create_sessionmaker(engine)
        at_rest = token_key(settings)
        cipher = TokenCipher(at_rest)
        queue = cls(
            client,
            settings,
            tracker=JobTracker(redis, catalog, settings.redis_key_prefix),
            job_keys=JobKeyStore(sessions),
            catalog=catalog,
            accounts=EmailAccountStore(sessions, cipher),
            secrets=SecretStore(sessions, cipher, at_rest),
            calls=CallStore(sessions, cipher),
            inputs=JobInputStore(sessions),
            enrichment=EnrichmentStore(sessions),
            dead_letters=DeadLetterStore(sessions),
            browser_workflows=BrowserWorkflowStore(sessions),
            executions=ExecutionStore(sessions),
            reports=ReportStore(sessions),
            ad_files=AdFileStore(sessions),
            ad_actions=AdActionStore(sessions),
        )
        queue._closers = [redis.aclose, engine.dispose]
        return queue

    async def close(self) -> None:
        closers, self._closers = self._closers, []
        for close in closers:
            try:
                await close()
            except (RedisError, OSError) as exc:
                log.warning("queue.close_failed", error=type(exc).__name__)
