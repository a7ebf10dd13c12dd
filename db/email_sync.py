"""Synced messages and the sync history (FR-055), written by the email sync activities.

Every write is idempotent on the sync's job id, so a retried or redone step changes
nothing twice, and counts read back from here add up however often a page was stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.mail import MailMessage
from db.base import utcnow
from db.models import EmailMessage, EmailSyncRun
from db.session import dialect_insert


class NewMessage(MailMessage):
    """A synced message to store, with the auto-draft rule's verdict."""

    important: bool


class UndraftedMessage(BaseModel):
    """An important message whose auto-draft has not been started yet."""

    model_config = ConfigDict(frozen=True)

    provider_message_id: str
    thread_id: str | None
    subject: str
    snippet: str


class SyncStore:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def begin_run(self, *, job_id: str, user_id: str, account_id: str, full: bool) -> None:
        """Record the sync as running (once per job; a retry finds the row there)."""
        async with self._sessionmaker() as session, session.begin():
            await session.execute(
                dialect_insert(session, EmailSyncRun)
                .values(
                    user_id=user_id,
                    account_id=account_id,
                    job_id=job_id,
                    status="running",
                    full_sync=full,
                    fetched=0,
                    stored=0,
                    skipped=0,
                    started_at=utcnow(),
                )
                .on_conflict_do_nothing(index_elements=[EmailSyncRun.job_id])
            )

    async def finish_run(
        self,
        *,
        job_id: str,
        status: str,
        fetched: int,
        stored: int,
        skipped: int,
        full: bool,
        error: str | None,
    ) -> None:
        async with self._sessionmaker() as session, session.begin():
            await session.execute(
                update(EmailSyncRun)
                .where(EmailSyncRun.job_id == job_id)
                .values(
                    status=status,
                    fetched=fetched,
                    stored=stored,
                    skipped=skipped,
                    full_sync=full,
                    error=error,
                    finished_at=utcnow(),
                )
            )

    async def store_page(
        self, *, account_id: str, job_id: str, messages: Sequence[NewMessage]
    ) -> int:
        """Insert what is new and return how many of ``messages`` this sync job has stored,
        counting those an earlier attempt of the same job stored (a redone page)."""
        if not messages:
            return 0
        now = utcnow()
        ids = [m.provider_message_id for m in messages]
        async with self._sessionmaker() as session, session.begin():
            await session.execute(
                dialect_insert(session, EmailMessage)
                .values(
                    [
                        {
                            **m.model_dump(),
                            "account_id": account_id,
                            "sync_job_id": job_id,
                            "created_at": now,
                        }
                        for m in messages
                    ]
                )
                .on_conflict_do_nothing(
                    index_elements=[EmailMessage.account_id, EmailMessage.provider_message_id]
                )
            )
            stored = await session.scalar(
                select(func.count()).where(
                    EmailMessage.account_id == account_id,
                    EmailMessage.provider_message_id.in_(ids),
                    EmailMessage.sync_job_id == job_id,
                )
            )
        return int(stored or 0)

    async def mark_drafted(self, account_id: str, drafts: Mapping[str, str]) -> None:
        """Record the auto-draft job started for each message (provider id -> job id)."""
        if not drafts:
            return
        async with self._sessionmaker() as session, session.begin():
            for message_id, draft_job_id in drafts.items():
                await session.execute(
                    update(EmailMessage)
                    .where(
                        EmailMessage.account_id == account_id,
                        EmailMessage.provider_message_id == message_id,
                    )
                    .values(draft_job_id=draft_job_id)
                )

    async def undrafted(self, account_id: str, limit: int) -> list[UndraftedMessage]:
        """The account's important messages with no auto-draft started, oldest first."""
        async with self._sessionmaker() as session:
            rows = await session.execute(
                select(
                    EmailMessage.provider_message_id,
                    EmailMessage.thread_id,
                    EmailMessage.subject,
                    EmailMessage.snippet,
                )
                .where(
                    EmailMessage.account_id == account_id,
                    EmailMessage.important,
                    EmailMessage.draft_job_id.is_(None),
                )
                .order_by(EmailMessage.id)
                .limit(limit)
            )
            return [
                UndraftedMessage(
                    provider_message_id=row.provider_message_id,
                    thread_id=row.thread_id,
                    subject=row.subject or "",
                    snippet=row.snippet or "",
                )
                for row in rows
            ]
