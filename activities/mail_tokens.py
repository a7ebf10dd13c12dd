"""Access tokens of connected mailboxes, for the email activities.

A token about to expire is refreshed (and stored: Microsoft rotates the refresh token, so the
old one must not be used again); a token the provider rejects although we believed it fresh
is refreshed once more, and then the call fails. A dead refresh token marks the account
``needs_reauth``. Provider errors are raised as they are; the activity maps them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from core.errors import AUTHENTICATION_FAILED
from core.logging import get_logger
from db.email import EmailAccountStore, MailboxAccount
from integrations.errors import PermanentProviderError, ReauthRequired
from integrations.mailbox import Mailbox

log = get_logger(__name__)
T = TypeVar("T")

# Refresh a token that expires within this margin rather than fail on it mid-call.
TOKEN_MARGIN = timedelta(seconds=60)


class MailboxTokens:
    def __init__(self, accounts: EmailAccountStore, mailboxes: Mapping[str, Mailbox]) -> None:
        self._accounts = accounts
        self._mailboxes = mailboxes

    async def account(self, account_id: str) -> MailboxAccount:
        """The account; ReauthRequired if it must be connected again (AccountNotFound if
        there is none)."""
        account = await self._accounts.get(account_id)
        if account.state == "needs_reauth":
            raise ReauthRequired(account.provider, "the account must be connected again")
        return account

    async def access_token(self, account: MailboxAccount, *, force: bool = False) -> str:
        """A usable access token, refreshed (and stored) when it is about to expire."""
        if not force and account.expires_at - datetime.now(UTC) > TOKEN_MARGIN:
            return account.access_token
        try:
            grant = await self._mailboxes[account.provider].refresh(account.refresh_token)
        except ReauthRequired:
            await self._accounts.mark_needs_reauth(account.id)
            log.warning("email_account.needs_reauth", account_id=account.id)
            raise
        await self._accounts.update_tokens(
            account.id,
            access_token=grant.access_token,
            expires_at=grant.expires_at,
            refresh_token=grant.refresh_token,
        )
        return grant.access_token

    async def call(self, account_id: str, fn: Callable[[Mailbox, str], Awaitable[T]]) -> T:
        """``fn(mailbox, token)`` with a fresh token, refreshed once more on a 401."""
        # Read the account each time: a refresh elsewhere may have rotated its tokens.
        account = await self.account(account_id)
        mailbox = self._mailboxes[account.provider]
        try:
            return await fn(mailbox, await self.access_token(account))
        except PermanentProviderError as exc:
            if exc.error_type != AUTHENTICATION_FAILED:
                raise
        account = await self.account(account_id)
        return await fn(mailbox, await self.access_token(account, force=True))
