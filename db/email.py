"""Connected mailboxes: OAuth tokens encrypted at rest, sync cursor and account state."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.crypto import TokenCipher
from db.base import utcnow
from db.models import EmailAccount, EmailVipSender
from db.session import dialect_insert


class AccountNotFound(LookupError):
    def __init__(self, account_id: str) -> None:
        super().__init__(f"no email account with id {account_id!r}")


class MailboxAccount(BaseModel):
    """An account with its tokens decrypted: only ever held in memory, never logged."""

    model_config = ConfigDict(frozen=True)

    id: str
    user_id: str
    provider: Literal["gmail", "outlook"]
    email_address: str
    access_token: str = Field(repr=False)
    refresh_token: str = Field(repr=False)
    expires_at: datetime
    sync_cursor: str | None
    state: Literal["active", "needs_reauth"]


class EmailAccountStore:
    """Reads and writes connected mailboxes; tokens pass through TokenCipher both ways."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], cipher: TokenCipher) -> None:
        self._sessionmaker = sessionmaker
        self._cipher = cipher

    async def connect(
        self,
        *,
        user_id: str,
        provider: Literal["gmail", "outlook"],
        email_address: str,
        access_token: str,
        refresh_token: str,
        expires_at: datetime,
    ) -> str:
        """Register (or reconnect) a mailbox; returns its account id.

        Connecting the same user, provider and address again replaces the tokens, keeps the
        id and sync cursor, and makes a ``needs_reauth`` account active again.
        """
        now = utcnow()
        address = email_address.strip().lower()
        async with self._sessionmaker() as session, session.begin():
            existing = await session.scalar(
                select(EmailAccount.id).where(
                    EmailAccount.user_id == user_id,
                    EmailAccount.provider == provider,
                    EmailAccount.email_address == address,
                )
            )
            account_id = existing or f"acct_{uuid.uuid4().hex}"
            tokens = {
                "access_token_enc": self._cipher.encrypt(access_token, bound_to=account_id),
                "refresh_token_enc": self._cipher.encrypt(refresh_token, bound_to=account_id),
                "expires_at": expires_at,
                "state": "active",
                "updated_at": now,
            }
            insert = dialect_insert(session, EmailAccount).values(
                id=account_id,
                user_id=user_id,
                provider=provider,
                email_address=address,
                sync_cursor=None,
                created_at=now,
                **tokens,
            )
            await session.execute(
                insert.on_conflict_do_update(
                    index_elements=[
                        EmailAccount.user_id,
                        EmailAccount.provider,
                        EmailAccount.email_address,
                    ],
                    set_={name: insert.excluded[name] for name in tokens},
                )
            )
        return account_id

    async def get(self, account_id: str) -> MailboxAccount:
        async with self._sessionmaker() as session:
            row = await session.get(EmailAccount, account_id)
            if row is None:
                raise AccountNotFound(account_id)
            return MailboxAccount(
                id=row.id,
                user_id=row.user_id,
                provider=row.provider,
                email_address=row.email_address,
                access_token=self._cipher.decrypt(row.access_token_enc, bound_to=row.id),
                refresh_token=self._cipher.decrypt(row.refresh_token_enc, bound_to=row.id),
                expires_at=row.expires_at,
                sync_cursor=row.sync_cursor,
                state=row.state,
            )

    async def update_tokens(
        self,
        account_id: str,
        *,
        access_token: str,
        expires_at: datetime,
        refresh_token: str | None = None,
    ) -> None:
        """Store refreshed tokens; a provider that rotates refresh tokens passes the new one."""
        values: dict[str, object] = {
            "access_token_enc": self._cipher.encrypt(access_token, bound_to=account_id),
            "expires_at": expires_at,
            "updated_at": utcnow(),
        }
        if refresh_token is not None:
            values["refresh_token_enc"] = self._cipher.encrypt(refresh_token, bound_to=account_id)
        await self._update(account_id, values)

    async def set_vip_senders(self, user_id: str, addresses: list[str]) -> None:
        """Replace the user's VIP senders (addresses compared case-insensitively)."""
        wanted = sorted({a.strip().lower() for a in addresses if a.strip()})
        now = utcnow()
        async with self._sessionmaker() as session, session.begin():
            await session.execute(delete(EmailVipSender).where(EmailVipSender.user_id == user_id))
            if wanted:
                await session.execute(
                    insert(EmailVipSender),
                    [{"user_id": user_id, "email_address": a, "created_at": now} for a in wanted],
                )

    async def vip_senders(self, user_id: str) -> frozenset[str]:
        async with self._sessionmaker() as session:
            rows = await session.scalars(
                select(EmailVipSender.email_address).where(EmailVipSender.user_id == user_id)
            )
            return frozenset(rows)

    async def mark_needs_reauth(self, account_id: str) -> None:
        await self._update(account_id, {"state": "needs_reauth", "updated_at": utcnow()})

    async def set_cursor(self, account_id: str, cursor: str | None) -> None:
        await self._update(account_id, {"sync_cursor": cursor, "updated_at": utcnow()})

    async def _update(self, account_id: str, values: dict[str, object]) -> None:
        async with self._sessionmaker() as session, session.begin():
            result = await session.execute(
                update(EmailAccount).where(EmailAccount.id == account_id).values(**values)
            )
            if getattr(result, "rowcount", 1) == 0:
                raise AccountNotFound(account_id)
