"""AI reply drafts: one row per EMAIL_DRAFT job, with the model, usage and tone used."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.models import EmailDraft
from db.session import dialect_insert


class NewDraft(BaseModel):
    model_config = ConfigDict(frozen=True)

    job_id: str
    user_id: str
    account_id: str | None
    thread_id: str
    tone: str
    model: str
    input_tokens: int
    output_tokens: int
    body: str


class StoredDraft(NewDraft):
    provider_draft_id: str | None


class DraftStore:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def get(self, job_id: str) -> StoredDraft | None:
        async with self._sessionmaker() as session:
            row = await session.scalar(select(EmailDraft).where(EmailDraft.job_id == job_id))
            if row is None:
                return None
            return StoredDraft(
                job_id=row.job_id,
                user_id=row.user_id,
                account_id=row.account_id,
                thread_id=row.thread_id,
                tone=row.tone,
                model=row.model,
                input_tokens=row.input_tokens,
                output_tokens=row.output_tokens,
                body=row.body,
                provider_draft_id=row.provider_draft_id,
            )

    async def add(self, draft: NewDraft) -> StoredDraft:
        """Store the job's draft unless it has one already; the stored one either way."""
        async with self._sessionmaker() as session, session.begin():
            await session.execute(
                dialect_insert(session, EmailDraft)
                .values(**draft.model_dump(), provider_draft_id=None, created_at=utcnow())
                .on_conflict_do_nothing(index_elements=[EmailDraft.job_id])
            )
        stored = await self.get(draft.job_id)
        if stored is None:
            raise LookupError(f"draft of job {draft.job_id!r} vanished after it was stored")
        return stored

    async def set_provider_draft_id(self, job_id: str, provider_draft_id: str) -> None:
        async with self._sessionmaker() as session, session.begin():
            await session.execute(
                update(EmailDraft)
                .where(EmailDraft.job_id == job_id)
                .values(provider_draft_id=provider_draft_id)
            )
