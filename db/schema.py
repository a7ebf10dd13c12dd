"""Is the database at the schema this code needs, and bring it there before any job runs.

Every process that uses the database (a worker, a producer's ``JobQueue``) calls
``ensure_schema`` first: with one SELECT it reads the Alembic revision, and when the schema
is behind it runs ``python -m db.migrate`` (which takes the migration lock, so many workers
starting at once migrate once), unless ``DB_MIGRATE_ON_START=false``, in which case it
refuses with ``SchemaNotReady`` naming the command to run. Nothing is accepted, no job is
run and no side effect happens on a database without the tables.

The migration runs in a child process so a worker never keeps Alembic in memory, and the
revisions are read from the names of the migration files (``NNNN_<what>.py``, revision
``NNNN``): no Alembic import on the hot path of starting up. A test checks both against
Alembic's own view.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine

from core.errors import DatabaseUnavailable, SchemaNotReady
from core.logging import get_logger, redact_text

log = get_logger("jobs.schema")

VERSIONS_DIR = Path(__file__).resolve().parent / "migrations" / "versions"
MIGRATE_COMMAND = "python -m db.migrate"
# A migration that takes longer than this is stuck (or waiting on a lock held elsewhere).
MIGRATE_TIMEOUT_S = 300.0


def known_revisions() -> list[str]:
    """The revisions of this code's migrations, oldest first."""
    return sorted(path.name.split("_", 1)[0] for path in VERSIONS_DIR.glob("[0-9]*_*.py"))


def schema_head() -> str:
    return known_revisions()[-1]


async def current_revision(engine: AsyncEngine) -> str | None:
    """The database's Alembic revision; None for a database without our tables."""
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(text("SELECT version_num FROM alembic_version"))).first()
    except (OperationalError, ProgrammingError) as exc:
        if _is_missing_table(exc):
            return None
        raise DatabaseUnavailable(_describe(exc)) from None
    except DBAPIError as exc:
        raise DatabaseUnavailable(_describe(exc)) from None
    except OSError as exc:
        raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from None
    return None if row is None else str(row[0])


def _is_missing_table(exc: DBAPIError) -> bool:
    text_ = str(exc.orig).lower()
    # SQLite: "no such table"; PostgreSQL: UndefinedTable "relation ... does not exist".
    return "no such table" in text_ or "does not exist" in text_


def _describe(exc: DBAPIError) -> str:
    return redact_text(f"{type(exc.orig).__name__}: {str(exc.orig).strip()}")[:300]


def _not_ready(revision: str | None, head: str) -> SchemaNotReady:
    found = f"at revision {revision}" if revision else "empty (no tables)"
    return SchemaNotReady(
        f"the database schema is {found}; this version needs revision {head}. "
        f"Run `{MIGRATE_COMMAND}` (or `make migrate`) with the same DATABASE_URL, "
        "or start with DB_MIGRATE_ON_START=true"
    )


async def ensure_schema(engine: AsyncEngine, database_url: str, *, migrate: bool) -> None:
    """Return once the database is at this code's head revision (or a newer one)."""
    head = schema_head()
    revision = await current_revision(engine)
    if revision == head:
        return
    if revision is not None and revision not in known_revisions():
        # Migrated by a newer release (a rolling deploy): its migrations only add.
        log.warning("schema.newer_than_code", revision=revision, head=head)
        return
    if not migrate:
        raise _not_ready(revision, head)
    log.info("schema.migrating", revision=revision, head=head)
    await asyncio.to_thread(_run_migrations, database_url)
    revision = await current_revision(engine)
    if revision != head:
        raise _not_ready(revision, head)
    log.info("schema.migrated", head=head)


def _run_migrations(database_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "db.migrate"],
            env=env,
            cwd=Path(__file__).resolve().parent.parent,
            capture_output=True,
            text=True,
            timeout=MIGRATE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SchemaNotReady(
            f"`{MIGRATE_COMMAND}` did not finish within {MIGRATE_TIMEOUT_S:.0f} s"
        ) from None
    if done.returncode != 0:
        tail = redact_text(" ".join(done.stderr.strip().splitlines()[-3:]))[:500]
        raise SchemaNotReady(f"`{MIGRATE_COMMAND}` failed (exit {done.returncode}): {tail}")
