"""Migrations and the webhook delivery log, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import Base
from db.migrate import alembic_config, sync_database_url, upgrade_database
from db.webhooks import DeliveryNotFound, WebhookDeliveryStore

TABLES = {
    "webhook_deliveries",
    "webhook_delivery_attempts",
    "job_dedup_keys",
    "email_accounts",
    "email_messages",
    "email_sync_history",
    "email_drafts",
    "email_vip_senders",
}


# The newest migration: every test database must end up there.
HEAD = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def _inspect(database_url: str) -> tuple[set[str], str | None, list[object]]:
    """Tables, Alembic revision, and differences between the schema and the models."""
    engine = sa.create_engine(sync_database_url(database_url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            revision = MigrationContext.configure(conn).get_current_revision()
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
        return tables, revision, diff
    finally:
        engine.dispose()


# --- migrations ---------------------------------------------------------------------------


def test_migrations_create_the_tables_matching_the_models(database_url: str) -> None:
    tables, revision, diff = _inspect(database_url)
    assert TABLES <= tables
    assert revision == HEAD
    assert diff == []


def test_upgrade_twice_is_idempotent(database_url: str) -> None:
    upgrade_database(database_url)
    upgrade_database(database_url)
    tables, revision, _ = _inspect(database_url)
    assert TABLES <= tables
    assert revision == HEAD


def test_concurrent_upgrades_on_postgres_take_turns(empty_postgres_url: str) -> None:
    # Without the advisory lock, parallel first migrations collide on CREATE TABLE.
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(upgrade_database, empty_postgres_url) for _ in range(6)]
        for future in futures:
            future.result()
    tables, revision, diff = _inspect(empty_postgres_url)
    assert TABLES <= tables
    assert revision == HEAD
    assert diff == []


def test_concurrent_upgrades_on_sqlite_take_turns(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'new' / 'dir' / 'jobs.db'}"
    with ThreadPoolExecutor(max_workers=4) as pool:
        for future in [pool.submit(upgrade_database, url) for _ in range(4)]:
            future.result()
    tables, revision, _ = _inspect(url)
    assert TABLES <= tables
    assert revision == HEAD


def test_sync_database_url() -> None:
    assert sync_database_url("sqlite+aiosqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    assert (
        sync_database_url("postgresql+psycopg://u:p%40ss@h:5432/d")
        == "postgresql+psycopg://u:p%40ss@h:5432/d"
    )


# --- delivery log -------------------------------------------------------------------------


@pytest.fixture
def store(sessionmaker: async_sessionmaker[AsyncSession]) -> WebhookDeliveryStore:
    return WebhookDeliveryStore(sessionmaker)


async def _new_delivery(
    store: WebhookDeliveryStore, unique_id: Callable[[str], str], user_id: str = "user-1"
) -> str:
    delivery_id = unique_id("wh")
    await store.ensure_delivery(
        delivery_id, user_id, "https://hooks.example.com/in", "lead.created", {"lead": {"id": 7}}
    )
    return delivery_id


def _at(seconds: float) -> datetime:
    return datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)


@pytest.mark.asyncio
async def test_ensure_delivery_is_idempotent(
    store: WebhookDeliveryStore, unique_id: Callable[[str], str]
) -> None:
    delivery_id = unique_id("wh")
    await store.ensure_delivery(delivery_id, "u", "https://a.example/x", "e.one", {"n": 1})
    await store.ensure_delivery(delivery_id, "u", "https://b.example/y", "e.two", {"n": 2})

    record = await store.get_delivery(delivery_id)
    assert record is not None
    assert (record.url, record.event_type, record.payload) == (
        "https://a.example/x",
        "e.one",
        {"n": 1},
    )
    assert record.status == "pending"
    assert record.attempts == 0
    assert record.created_at.tzinfo is not None
    assert record.created_at.utcoffset() == timedelta(0)
    assert await store.get_delivery(unique_id("missing")) is None


@pytest.mark.asyncio
async def test_attempts_upsert_on_attempt_number(
    store: WebhookDeliveryStore, unique_id: Callable[[str], str]
) -> None:
    delivery_id = await _new_delivery(store, unique_id)
    await store.record_attempt(delivery_id, 1, _at(0), 12.5, 503, "HTTP 503", "retry")
    # The same attempt recorded again (a re-run) replaces, never duplicates.
    await store.record_attempt(delivery_id, 1, _at(1), 30.0, None, "timeout: ReadTimeout", "retry")

    attempts = await store.list_attempts(delivery_id)
    assert len(attempts) == 1
    only = attempts[0]
    assert (only.attempt, only.started_at, only.duration_ms) == (1, _at(1), 30.0)
    assert (only.status_code, only.error, only.outcome) == (None, "timeout: ReadTimeout", "retry")

    record = await store.get_delivery(delivery_id)
    assert record is not None
    assert (record.status, record.attempts, record.last_status_code) == ("pending", 1, None)
    assert record.last_error == "timeout: ReadTimeout"


@pytest.mark.asyncio
async def test_delivered_transition(
    store: WebhookDeliveryStore, unique_id: Callable[[str], str]
) -> None:
    delivery_id = await _new_delivery(store, unique_id)
    await store.record_attempt(delivery_id, 1, _at(0), 8.0, 500, "HTTP 500", "retry")
    await store.record_attempt(delivery_id, 2, _at(5), 9.0, 204, None, "delivered")

    record = await store.get_delivery(delivery_id)
    assert record is not None
    assert record.status == "delivered"
    assert record.attempts == 2
    assert (record.last_status_code, record.last_error) == (204, None)
    assert record.delivered_at is not None and record.failed_at is None
    assert record.updated_at >= record.created_at
    assert [a.attempt for a in await store.list_attempts(delivery_id)] == [1, 2]
    assert [a.outcome for a in await store.list_attempts(delivery_id)] == ["retry", "delivered"]


@pytest.mark.asyncio
async def test_failed_transition_and_stale_attempt(
    store: WebhookDeliveryStore, unique_id: Callable[[str], str]
) -> None:
    delivery_id = await _new_delivery(store, unique_id)
    await store.record_attempt(delivery_id, 1, _at(0), 5.0, 503, "HTTP 503", "retry")
    await store.record_attempt(delivery_id, 2, _at(9), 5.0, 410, "HTTP 410", "failed")
    # A late re-record of attempt 1 updates its row but not the delivery's summary.
    await store.record_attempt(delivery_id, 1, _at(1), 6.0, 502, "HTTP 502", "retry")

    record = await store.get_delivery(delivery_id)
    assert record is not None
    assert (record.status, record.attempts, record.last_status_code) == ("failed", 2, 410)
    assert record.failed_at is not None and record.delivered_at is None
    attempts = await store.list_attempts(delivery_id)
    assert [(a.attempt, a.status_code) for a in attempts] == [(1, 502), (2, 410)]


@pytest.mark.asyncio
async def test_record_attempt_needs_the_delivery(
    store: WebhookDeliveryStore, unique_id: Callable[[str], str]
) -> None:
    with pytest.raises(DeliveryNotFound):
        await store.record_attempt(unique_id("nope"), 1, _at(0), 1.0, 200, None, "delivered")
    delivery_id = await _new_delivery(store, unique_id)
    with pytest.raises(ValueError, match="outcome"):
        await store.record_attempt(delivery_id, 1, _at(0), 1.0, 200, None, "gone")  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_list_failed(store: WebhookDeliveryStore, unique_id: Callable[[str], str]) -> None:
    user, other = unique_id("user"), unique_id("user")
    first = await _new_delivery(store, unique_id, user)
    second = await _new_delivery(store, unique_id, user)
    delivered = await _new_delivery(store, unique_id, user)
    pending = await _new_delivery(store, unique_id, user)
    elsewhere = await _new_delivery(store, unique_id, other)
    await store.record_attempt(first, 1, _at(0), 1.0, 404, "HTTP 404", "failed")
    await store.record_attempt(
        second, 1, _at(0), 1.0, None, "target address is not public", "failed"
    )
    await store.record_attempt(delivered, 1, _at(0), 1.0, 200, None, "delivered")
    await store.record_attempt(pending, 1, _at(0), 1.0, 503, "HTTP 503", "retry")
    await store.record_attempt(elsewhere, 1, _at(0), 1.0, 400, "HTTP 400", "failed")

    mine = await store.list_failed(user, limit=10)
    assert [r.id for r in mine] == [second, first]  # newest failure first
    assert all(r.status == "failed" for r in mine)
    assert [r.id for r in await store.list_failed(user, limit=1)] == [second]
    assert [r.id for r in await store.list_failed(other, limit=10)] == [elsewhere]
    everyone = {r.id for r in await store.list_failed(None, limit=1000)}
    assert {first, second, elsewhere} <= everyone
    assert not {delivered, pending} & everyone


@pytest.mark.asyncio
async def test_concurrent_recorders_of_one_delivery(
    store: WebhookDeliveryStore, unique_id: Callable[[str], str]
) -> None:
    delivery_id = await _new_delivery(store, unique_id)
    await asyncio.gather(
        *(
            store.record_attempt(delivery_id, n, _at(n), 1.0, 503, "HTTP 503", "retry")
            for n in range(1, 9)
        )
    )
    record = await store.get_delivery(delivery_id)
    assert record is not None
    assert record.attempts == 8
    assert len(await store.list_attempts(delivery_id)) == 8


@pytest.mark.asyncio
async def test_record_attempt_creates_the_delivery_when_given(
    store: WebhookDeliveryStore, unique_id: Callable[[str], str]
) -> None:
    from db.webhooks import NewDelivery

    delivery_id = unique_id("first-attempt")
    facts = NewDelivery(
        user_id="u", url="https://a.example/x", event_type="e.one", payload={"n": 1}
    )
    await store.record_attempt(
        delivery_id, 1, _at(0), 3.0, 503, "HTTP 503", "retry", delivery=facts
    )
    await store.record_attempt(delivery_id, 2, _at(4), 2.0, 200, None, "delivered", delivery=facts)
    # A late re-record of attempt 1 updates only that attempt, never the summary.
    await store.record_attempt(
        delivery_id, 1, _at(1), 4.0, 502, "HTTP 502", "retry", delivery=facts
    )
    record = await store.get_delivery(delivery_id)
    assert record is not None
    assert (record.status, record.attempts, record.last_status_code) == ("delivered", 2, 200)
    assert record.delivered_at is not None and record.payload == {"n": 1}
    attempts = await store.list_attempts(delivery_id)
    assert [(a.attempt, a.status_code, a.outcome) for a in attempts] == [
        (1, 502, "retry"),
        (2, 200, "delivered"),
    ]
