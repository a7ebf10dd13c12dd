"""``python -m devtools.schedules``: sync the declared Temporal Schedules (core/schedules.py)
for deployments that do it as a separate step; the maintenance worker also does it at start."""

from __future__ import annotations

import asyncio

from core import temporal
from core.config import get_settings
from core.logging import configure_logging, exit_process
from core.schedules import sync_schedules


async def _sync() -> None:
    settings = get_settings()
    client = await temporal.connect(settings)
    report = await sync_schedules(client)
    print(
        f"schedules: created {list(report.created)}, updated {list(report.updated)}, "
        f"deleted {list(report.deleted)}, unchanged {list(report.unchanged)}"
    )


def main() -> int:
    configure_logging(json_logs=False, level="WARNING")
    asyncio.run(_sync())
    return 0


if __name__ == "__main__":
    exit_process(main())
