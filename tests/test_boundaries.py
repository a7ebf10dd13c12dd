"""Package boundaries that keep processes lean and layers apart, checked in a fresh
interpreter (a module imported by an earlier test would hide a violation here)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import PROJECT_ROOT


def imported_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    return set(out.stdout.split())


def test_importing_client_loads_no_worker_code() -> None:
    loaded = imported_after("import client")
    worker_side = {
        m
        for m in loaded
        if m.split(".")[0] in ("workflows", "activities", "worker", "integrations")
        or m in ("tracking.interceptor", "tracking.reconcile", "temporalio.worker")
    }
    assert worker_side == set()
    # Nor the browser driver: producers never run a browser.
    assert not {m for m in loaded if m.startswith("playwright")}


@pytest.mark.parametrize(
    "module",
    [
        "webhooks", "google", "microsoft", "drafting", "errors", "vapi", "apify",
        "browserbase", "browsers", "ads", "pagespeed", "crawler", "targets",
    ],
)  # fmt: skip
def test_integrations_do_not_import_temporal(module: str) -> None:
    loaded = imported_after(f"import integrations.{module}")
    assert {m for m in loaded if m.startswith("temporalio")} == set()
