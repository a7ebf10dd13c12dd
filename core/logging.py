"""Structured logging with PII and secret redaction (NFR-033, NFR-040).

Every record, from our code or from ``workflow.logger`` / ``activity.logger`` through the
stdlib bridge, passes the redaction processor before it is rendered: email addresses,
phone numbers, bearer tokens, webhook secrets and values of secret-named keys never
reach a log line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, NoReturn

import structlog

REDACTED = "[redacted]"

_SECRET_KEY = re.compile(
    r"(secret|token|password|passwd|authorization|api[_-]?key|cookie|signature)", re.I
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"whsec_[A-Za-z0-9+/=]+"), "whsec_" + REDACTED),
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"), "Bearer " + REDACTED),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"), REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), REDACTED),  # JWTs
    # Credentials in URLs (postgresql://user:password@host, redis://:password@host).
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@"), r"\1" + REDACTED + "@"),
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), "[email]"),
)
# Phone numbers: international (+ then 7..15 digits, optionally grouped by spaces, dots,
# dashes or an area code in brackets) and North American 3-3-4 groups. Bare digit runs are
# left alone: they cannot be told apart from epoch timestamps, Redis stream ids or the
# digit groups of UUIDs, and ISO timestamps, dates and IP addresses must survive intact.
_PHONE = re.compile(
    r"(?:(?<![\d+.])\+[1-9]\d{0,3}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,4}){1,6}"
    r"|(?<![\w+.])(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}"
    r")(?![\w+]|[.:-]\d)"
)
_PHONE_DIGITS = range(7, 16)  # E.164 allows at most 15 digits
_PHONE_KEY = re.compile(r"(phone|msisdn)", re.I)


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    if text.startswith("+") and sum(c.isdigit() for c in text) not in _PHONE_DIGITS:
        return text
    return "[phone]"


def redact_text(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return _PHONE.sub(_phone, text)


def redact_value(value: Any, key: str | None = None) -> Any:
    if key is not None and _SECRET_KEY.search(key):
        return REDACTED if value not in (None, "") else value
    if key is not None and _PHONE_KEY.search(key) and isinstance(value, str) and value:
        return "[phone]"  # a phone field is personal data whatever its format
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [redact_value(v) for v in value]
    if isinstance(value, BaseException):
        return redact_text(f"{type(value).__name__}: {value}")
    return value


def _redact_processor(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if key in ("exc_info", "stack_info"):
            continue
        event_dict[key] = redact_value(event_dict[key], None if key == "event" else key)
    return event_dict


def _redact_rendered_exception(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # Tracebacks are rendered to text first, then scrubbed like any other string.
    if isinstance(event_dict.get("exception"), str):
        event_dict["exception"] = redact_text(event_dict["exception"])
    return event_dict


class _ExpectedActivityFailures(logging.Filter):
    """The SDK logs every failed activity attempt with its traceback. A failure the activity
    raised on purpose (an ApplicationError: a 410, a 503 to retry, a revoked token) is
    already one line of the job's lifecycle log (``job.retrying`` with the error type and
    message, or ``job.failed``), so the SDK's record of it is dropped; anything else keeps
    its traceback (NFR-042: full stack traces for errors)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from temporalio.exceptions import ApplicationError

        exc = record.exc_info[1] if record.exc_info else None
        expected = isinstance(exc, ApplicationError) and str(record.msg).startswith(
            "Completing activity as failed"
        )
        return not expected


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        # One timestamp format everywhere: ISO-8601 in UTC.
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact_processor,
    ]


def _forward_sdk_core_logs() -> None:
    """Send the SDK core's own (Rust) log lines through Python logging, so they share this
    pipeline's format and redaction instead of going to stderr in colour codes."""
    from temporalio.runtime import (
        LogForwardingConfig,
        LoggingConfig,
        Runtime,
        TelemetryConfig,
        TelemetryFilter,
    )

    forwarding = LogForwardingConfig(logger=logging.getLogger("temporalio.core"))
    telemetry = TelemetryConfig(
        logging=LoggingConfig(
            filter=TelemetryFilter(core_level="WARN", other_level="ERROR"), forwarding=forwarding
        )
    )
    Runtime.set_default(Runtime(telemetry=telemetry), error_if_already_set=False)


def configure_logging(
    *, json_logs: bool, level: str = "INFO", forward_sdk_core_logs: bool = True
) -> None:
    """Route structlog, stdlib logging and the Temporal SDK's core logs through one redacting
    pipeline. Entry points call this before they create a Temporal client, and end with
    ``exit_process``."""
    shared = _shared_processors()
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_logs
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            # First: a line below the level costs nothing (no redaction, no timestamp).
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redact_rendered_exception,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The SDK's own chatter about retries is already covered by our lifecycle events.
    activity_logger = logging.getLogger("temporalio.activity")
    activity_logger.setLevel(logging.WARNING)
    activity_logger.filters[:] = [_ExpectedActivityFailures()]
    # httpx logs every request URL at INFO; URLs can carry tokens and provider ids.
    for name in ("httpx", "httpx2"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if forward_sdk_core_logs:
        _forward_sdk_core_logs()


def exit_process(code: int) -> NoReturn:
    """End an entry point whose SDK core logs are forwarded: flush, then exit at once.

    The SDK core's threads hand log lines to Python every few milliseconds; one that does so
    while the interpreter finalizes aborts the process (SIGABRT, "PyGILState_Release"). So
    a process that has closed its clients and flushed its logs skips finalization.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _configure_structlog_default() -> None:
    """Until an entry point configures logging (or a host application configures structlog
    its own way), structlog lines still come out in the one format, redacted, on stderr."""
    if structlog.is_configured():
        return
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact_processor,
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


_configure_structlog_default()
