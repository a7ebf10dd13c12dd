"""The HTTP API fuzzed from its own OpenAPI document (schemathesis, as its ``st`` command):
every operation with generated inputs, valid and not, must never answer 5xx. Run once with
a user key (the routes a user may call, and the 403s of the others) and once with an
operator key on the read-only routes (an operator's bulk and pause routes would act on the
shared test server). The SSE streams, which end only with their job, are left out."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from api.app import create_app
from core.config import Settings
from db.api_keys import ApiKeyStore
from db.session import create_engine, create_sessionmaker
from emulators.server import serve
from tests.support import terminate_open_jobs

pytestmark = pytest.mark.integration

ST = Path(sys.executable).with_name("st")


async def fuzz(url: str, key: str, where: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [
            str(ST),
            "run",
            f"{url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--header",
            f"Authorization: Bearer {key}",
            "--max-examples",
            "25",
            "--request-timeout",
            "10",
            "--exclude-path-regex",
            "/events$|/stream$",
            "--exclude-path-regex",
            "^/v1/providers/",
            "--no-color",
            *extra,
        ],
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
        cwd=where,  # its cache of crashes goes there, not into the project
        capture_output=True,
        text=True,
        timeout=600,
    )


async def test_no_generated_request_gets_a_server_error(settings: Settings, tmp_path: Path):
    engine = create_engine(settings.database_url)
    keys = ApiKeyStore(create_sessionmaker(engine))
    tag = uuid.uuid4().hex[:6]
    _, user_key = await keys.create(f"fuzz-{tag}", "user")
    _, operator_key = await keys.create(f"fuzz-ops-{tag}", "operator")
    await engine.dispose()
    try:
        async with serve(create_app(settings), lifespan="on") as url:
            as_user = await fuzz(url, user_key, tmp_path)
            as_operator = await fuzz(url, operator_key, tmp_path, "--include-method", "GET")
    finally:
        await terminate_open_jobs(settings, "webhooks")
    for run in (as_user, as_operator):
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
