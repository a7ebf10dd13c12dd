"""Connected mailboxes of the email jobs: registering one and the user's VIP senders."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, EmailStr, Field, ValidationError

from client.base import QueueBase
from core.errors import InvalidArguments, describe_problems
from core.jobs import NonEmptyId
from core.logging import get_logger
from db.email import EmailAccountStore

log = get_logger("jobs.client")


class ConnectEmailAccount(BaseModel):
    model_config = ConfigDict(frozen=True)

    user_id: NonEmptyId
    provider: Literal["gmail", "outlook"]
    email_address: EmailStr
    access_token: str = Field(min_length=1, repr=False)
    refresh_token: str = Field(min_length=1, repr=False)
    expires_at: AwareDatetime


class VipSenders(BaseModel):
    user_id: NonEmptyId
    addresses: list[EmailStr] = Field(max_length=1000)


class Mailboxes(QueueBase):
    def _accounts(self) -> EmailAccountStore:
        if self.accounts is None:
            raise RuntimeError("this JobQueue has no database for email accounts")
        return self.accounts

    async def connect_email_account(
        self,
        user_id: str,
        provider: str,
        email_address: str,
        access_token: str,
        refresh_token: str,
        expires_at: datetime,
    ) -> str:
        """Register a user's mailbox (tokens encrypted at rest); returns the account id that
        ``EmailSyncJobData.account_id`` names. Connecting it again replaces the tokens."""
        accounts = self._accounts()
        try:
            account = ConnectEmailAccount(
                user_id=user_id,
                provider=provider,
                email_address=email_address,
                access_token=access_token,
                refresh_token=refresh_token,
                expires_at=expires_at,
            )
        except ValidationError as exc:
            raise InvalidArguments(
                "connect_email_account", describe_problems(exc.errors())
            ) from None
        account_id = await accounts.connect(**account.model_dump())
        log.info(
            "email_account.connected", account_id=account_id, provider=provider, user_id=user_id
        )
        return account_id

    async def set_vip_senders(self, user_id: str, addresses: list[str]) -> None:
        """Replace the user's VIP senders: their new mail always gets an auto-draft."""
        accounts = self._accounts()
        try:
            vips = VipSenders(user_id=user_id, addresses=addresses)
        except ValidationError as exc:
            raise InvalidArguments("set_vip_senders", describe_problems(exc.errors())) from None
        await accounts.set_vip_senders(vips.user_id, [str(a) for a in vips.addresses])
