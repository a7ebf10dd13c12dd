"""Job secrets (and the housekeeping that purges them with other expired rows), on SQLite and
PostgreSQL: stored encrypted under a keyed id, read back only by
their owner, shared by the jobs that use the same secret, purged when no job needs them."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.crypto import TokenCipher
from db.base import utcnow
from db.models import JobSecret
from db.secrets import SecretNotFound, SecretStore

KEY = os.urandom(32)
DAY = timedelta(days=1)


def store(sessionmaker: async_sessionmaker[AsyncSession], key: bytes = KEY) -> SecretStore:
    return SecretStore(sessionmaker, TokenCipher(key), key)


async def row(sessionmaker: async_sessionmaker[AsyncSession], secret_id: str) -> JobSecret | None:
    async with sessionmaker() as session:
        found: JobSecret | None = await session.get(JobSecret, secret_id)
        return found


async def test_put_then_get_and_only_ciphertext_at_rest(
    sessionmaker: async_sessionmaker[AsyncSession], unique_id: Callable[[str], str]
) -> None:
    secrets = store(sessionmaker)
    user, value = unique_id("user"), "whsec_" + os.urandom(24).hex()
    secret_id = await secrets.put(user, value, needed_for=DAY)
    assert secret_id.startswith("sec_") and value not in secret_id
    stored = await row(sessionmaker, secret_id)
    assert stored is not None and stored.user_id == user
    assert value not in stored.ciphertext
    # A fresh store (another process) reads it from the database.
    assert await store(sessionmaker).get(secret_id, user_id=user) == value


async def test_same_secret_same_id_other_user_other_id(
    sessionmaker: async_sessionmaker[AsyncSession], unique_id: Callable[[str], str]
) -> None:
    secrets = store(sessionmaker)
    user, other, value = unique_id("user"), unique_id("user"), "whsec_same"
    first = await secrets.put(user, value, needed_for=DAY)
    assert await store(sessionmaker).put(user, value, needed_for=DAY) == first
    assert await secrets.put(other, value, needed_for=DAY) != first
    # A different at-rest key makes different ids: ids reveal nothing across deployments.
    assert store(sessionmaker, os.urandom(32)).secret_id(user, value) != first


async def test_another_users_id_is_not_found(
    sessionmaker: async_sessionmaker[AsyncSession], unique_id: Callable[[str], str]
) -> None:
    secrets = store(sessionmaker)
    secret_id = await secrets.put(unique_id("owner"), "whsec_mine", needed_for=DAY)
    with pytest.raises(SecretNotFound):
        await store(sessionmaker).get(secret_id, user_id=unique_id("intruder"))
    with pytest.raises(SecretNotFound):
        await secrets.get("sec_nonexistent", user_id="anyone")


async def test_a_later_need_extends_the_life_and_purge_keeps_what_is_needed(
    sessionmaker: async_sessionmaker[AsyncSession], unique_id: Callable[[str], str]
) -> None:
    user = unique_id("user")
    short = await store(sessionmaker).put(user, "whsec_short", needed_for=DAY)
    before = (await row(sessionmaker, short)).needed_until  # type: ignore[union-attr]
    await store(sessionmaker).put(user, "whsec_short", needed_for=10 * DAY)
    after = (await row(sessionmaker, short)).needed_until  # type: ignore[union-attr]
    assert after - before > 8 * DAY
    # A shorter need later never shortens it.
    await store(sessionmaker).put(user, "whsec_short", needed_for=timedelta(0))
    assert (await row(sessionmaker, short)).needed_until == after  # type: ignore[union-attr]

    gone = await store(sessionmaker).put(user, "whsec_gone", needed_for=DAY)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(JobSecret).where(JobSecret.id == gone).values(needed_until=utcnow() - DAY)
        )
    assert await store(sessionmaker).purge_expired() >= 1
    async with sessionmaker() as session:
        left = set(
            await session.scalars(select(JobSecret.id).where(JobSecret.id.in_([short, gone])))
        )
    assert left == {short}


async def test_repeated_puts_skip_the_database(
    sessionmaker: async_sessionmaker[AsyncSession], unique_id: Callable[[str], str]
) -> None:
    secrets = store(sessionmaker)
    user = unique_id("user")
    secret_id = await secrets.put(user, "whsec_hot", needed_for=DAY)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(JobSecret).where(JobSecret.id == secret_id).values(user_id="changed-behind")
        )
    # The cached put does not write again (the row keeps what was changed behind its back).
    assert await secrets.put(user, "whsec_hot", needed_for=DAY) == secret_id
    assert (await row(sessionmaker, secret_id)).user_id == "changed-behind"  # type: ignore[union-attr]


async def test_housekeeping_purges_expired_keys_and_secrets_in_batches(
    sessionmaker: async_sessionmaker[AsyncSession],
    unique_id: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import db.housekeeping
    from db.dedup import JobKeyStore
    from db.job_inputs import JobInputStore

    monkeypatch.setattr(db.housekeeping, "BATCH", 2)
    keys, secrets, inputs = (
        JobKeyStore(sessionmaker),
        store(sessionmaker),
        JobInputStore(sessionmaker),
    )
    user = unique_id("user")
    for n in range(5):
        await keys.claim(unique_id("job"), "webhooks", "webhook_delivery", user, -DAY)
        await secrets.put(user, f"whsec_old_{n}", needed_for=-DAY)
        await inputs.put(unique_id("job"), "leads", user, [{"id": "l"}], needed_for=-DAY)
    kept = await secrets.put(user, "whsec_needed", needed_for=DAY)
    kept_job = unique_id("job")
    await inputs.put(kept_job, "leads", user, [{"id": "l"}], needed_for=DAY)
    dedup_keys, job_secrets, job_inputs = await db.housekeeping.purge_once(keys, secrets, inputs)
    assert dedup_keys >= 5 and job_secrets >= 5 and job_inputs >= 5
    assert await secrets.get(kept, user_id=user) == "whsec_needed"
    assert await inputs.slice(kept_job, "leads", 0, 10) == [(0, {"id": "l"})]
    assert await db.housekeeping.purge_once(keys, secrets, inputs) == (0, 0, 0)
