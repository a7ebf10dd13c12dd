"""Bring a database to the latest schema: ``python -m db.migrate`` or ``upgrade_database(url)``.

Every worker may call this at start. On PostgreSQL an advisory lock makes concurrent callers
take turns (the first migrates, the rest find the schema at head); on a SQLite file a file
lock does the same for processes of one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import Connection, make_url

from core.config import get_settings
from db.schema import current_revision, schema_head
from db.session import create_engine as create_async_engine_for
from db.session import ensure_sqlite_directory

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Arbitrary but fixed key of pg_advisory_lock: ASCII "bjmigrat".
MIGRATION_LOCK_KEY = 0x626A6D6967726174


def sync_database_url(database_url: str) -> str:
    """The same database with a synchronous driver, as Alembic runs synchronously."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        url = url.set(drivername="sqlite")
    elif url.get_backend_name() == "postgresql":
        # psycopg 3 serves both the async engine and this sync one.
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def alembic_config(database_url: str) -> Config:
    """An Alembic config built in code, pointing at this package's migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    # ConfigParser interpolates '%', which URL-encoded passwords contain.
    config.set_main_option("sqlalchemy.url", sync_database_url(database_url).replace("%", "%%"))
    return config


@contextmanager
def _postgres_lock(connection: Connection) -> Iterator[None]:
    # A session-level lock outlives the transactions Alembic commits inside it.
    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    connection.commit()
    try:
        yield
    finally:
        connection.rollback()
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
        connection.commit()


@contextmanager
def _sqlite_file_lock(database_url: str) -> Iterator[None]:
    database = make_url(database_url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    lock_path = Path(database).expanduser().with_name(Path(database).name + ".migrate-lock")
    with lock_path.open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def upgrade_database(database_url: str) -> None:
    """Run ``alembic upgrade head``; idempotent and safe to call from several processes."""
    sync_url = sync_database_url(database_url)
    config = alembic_config(database_url)
    is_sqlite = make_url(sync_url).get_backend_name() == "sqlite"
    if is_sqlite:
        ensure_sqlite_directory(sync_url)
    engine = create_engine(sync_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            if is_sqlite:
                with _sqlite_file_lock(sync_url):
                    command.upgrade(config, "head")
            else:
                with _postgres_lock(connection):
                    command.upgrade(config, "head")
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m db.migrate",
        description="Bring the database named by DATABASE_URL to the latest schema.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="only report whether the schema is at head (exit 0) or behind (exit 1)",
    )
    args = parser.parse_args(argv)
    url = get_settings().database_url
    shown = make_url(url).render_as_string(hide_password=True)
    if args.check:
        revision = asyncio.run(_revision(url))
        head = schema_head()
        print(f"{shown}: schema at {revision or 'nothing'}, head is {head}", file=sys.stderr)
        return 0 if revision == head else 1
    upgrade_database(url)
    print(f"database at head: {shown}", file=sys.stderr)
    return 0


async def _revision(database_url: str) -> str | None:
    engine = create_async_engine_for(database_url)
    try:
        return await current_revision(engine)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
