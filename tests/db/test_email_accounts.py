"""Connected mailboxes: tokens encrypted at rest, reconnect, refresh, re-auth state, cursor."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.crypto import TokenCipher
from db.email import AccountNotFound, EmailAccountStore
from db.models import EmailAccount

KEY = os.urandom(32)
EXPIRES = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def accounts(sessionmaker: async_sessionmaker[AsyncSession]) -> EmailAccountStore:
    return EmailAccountStore(sessionmaker, TokenCipher(KEY))


async def test_tokens_are_encrypted_at_rest(
    accounts: EmailAccountStore,
    sessionmaker: async_sessionmaker[AsyncSession],
    unique_id: Callable[[str], str],
) -> None:
    user = unique_id("user")
    account_id = await accounts.connect(
        user_id=user,
        provider="gmail",
        email_address="Ann@Example.com",
        access_token="ya29.secret-access",
        refresh_token="1//secret-refresh",
        expires_at=EXPIRES,
    )
    async with sessionmaker() as session:
        row = await session.get(EmailAccount, account_id)
        raw = (
            await session.execute(
                sa.text(
                    "SELECT access_token_enc, refresh_token_enc FROM email_accounts WHERE id = :id"
                ),
                {"id": account_id},
            )
        ).one()
    assert row is not None and row.email_address == "ann@example.com"
    assert "secret" not in raw[0] and "secret" not in raw[1]
    account = await accounts.get(account_id)
    assert (account.access_token, account.refresh_token) == (
        "ya29.secret-access",
        "1//secret-refresh",
    )
    assert account.state == "active" and account.sync_cursor is None
    assert "secret" not in repr(account)


async def test_ciphertext_is_bound_to_its_account(
    accounts: EmailAccountStore,
    sessionmaker: async_sessionmaker[AsyncSession],
    unique_id: Callable[[str], str],
) -> None:
    user = unique_id("user")
    first = await accounts.connect(
        user_id=user,
        provider="gmail",
        email_address="a@example.com",
        access_token="a-token",
        refresh_token="a-refresh",
        expires_at=EXPIRES,
    )
    second = await accounts.connect(
        user_id=user,
        provider="outlook",
        email_address="a@example.com",
        access_token="b-token",
        refresh_token="b-refresh",
        expires_at=EXPIRES,
    )
    async with sessionmaker() as session, session.begin():
        stolen = await session.get(EmailAccount, first)
        assert stolen is not None
        await session.execute(
            sa.update(EmailAccount)
            .where(EmailAccount.id == second)
            .values(access_token_enc=stolen.access_token_enc)
        )
    with pytest.raises(InvalidTag):
        await accounts.get(second)


async def test_reconnect_keeps_id_and_cursor_and_reactivates(
    accounts: EmailAccountStore, unique_id: Callable[[str], str]
) -> None:
    user = unique_id("user")
    account_id = await accounts.connect(
        user_id=user,
        provider="outlook",
        email_address="b@example.com",
        access_token="t1",
        refresh_token="r1",
        expires_at=EXPIRES,
    )
    await accounts.set_cursor(account_id, "https://graph/delta?$deltatoken=abc")
    await accounts.mark_needs_reauth(account_id)
    assert (await accounts.get(account_id)).state == "needs_reauth"
    again = await accounts.connect(
        user_id=user,
        provider="outlook",
        email_address="b@example.com",
        access_token="t2",
        refresh_token="r2",
        expires_at=EXPIRES + timedelta(hours=1),
    )
    account = await accounts.get(again)
    assert again == account_id
    assert (account.access_token, account.refresh_token, account.state) == ("t2", "r2", "active")
    assert account.sync_cursor == "https://graph/delta?$deltatoken=abc"


async def test_refresh_keeps_or_rotates_the_refresh_token(
    accounts: EmailAccountStore, unique_id: Callable[[str], str]
) -> None:
    account_id = await accounts.connect(
        user_id=unique_id("user"),
        provider="gmail",
        email_address="c@example.com",
        access_token="old",
        refresh_token="keep-me",
        expires_at=EXPIRES,
    )
    later = EXPIRES + timedelta(hours=1)
    await accounts.update_tokens(account_id, access_token="new", expires_at=later)
    account = await accounts.get(account_id)
    assert (account.access_token, account.refresh_token, account.expires_at) == (
        "new",
        "keep-me",
        later,
    )
    await accounts.update_tokens(
        account_id, access_token="newer", expires_at=later, refresh_token="rotated"
    )
    assert (await accounts.get(account_id)).refresh_token == "rotated"


async def test_unknown_account(accounts: EmailAccountStore) -> None:
    with pytest.raises(AccountNotFound):
        await accounts.get("acct_missing")
    with pytest.raises(AccountNotFound):
        await accounts.mark_needs_reauth("acct_missing")
