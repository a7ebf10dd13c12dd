"""``python -m api [--host H] [--port P]``: serve the HTTP API (defaults API_HOST, API_PORT)."""

from __future__ import annotations

import argparse

import uvicorn

from api.app import create_app
from core.config import ConfigError, get_settings
from core.logging import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api", description=__doc__)
    parser.add_argument("--host", help="address to listen on (default API_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default API_PORT, 8000)")
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
    except ConfigError as exc:
        parser.exit(2, f"python -m api: {exc}\n")
    configure_logging(json_logs=settings.is_production, level=settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
        log_level="warning",
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
