"""Log redaction: personal data and secrets never reach a log line, ids and numbers do."""

from __future__ import annotations

import json
import logging
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

from core.logging import REDACTED, configure_logging, get_logger, redact_text, redact_value

EMAIL = "jane.doe+jobs@example.com"
PHONE = "+14155550123"
US_PHONE = "(415) 555-0123"
BEARER = "Bearer abc.def"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
RAW_VALUES = [
    EMAIL,
    PHONE,
    "4155550123",
    "415) 555",
    "555-0123",
    "abc.def",
    "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "tok-123456",
    "hunter2-password",
    "key-abcdef",
    "nested-token-value",
    "second.person@example.org",
]


Reader = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], Reader]]:
    """``start()`` configures JSON logging and returns a reader of the stderr lines.

    Called from the test body: pytest swaps the captured sys.stderr between setup and call.
    The previous logging set-up is restored afterwards.
    """
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    activity_level = logging.getLogger("temporalio.activity").level

    def lines() -> list[dict[str, Any]]:
        err = capsys.readouterr().err
        raw = [line for line in err.splitlines() if line.strip()]
        return [json.loads(line) for line in raw]  # every line is one JSON document

    def start() -> Reader:
        # No forwarding of SDK core logs in the test process (it outlives the test).
        configure_logging(json_logs=True, forward_sdk_core_logs=False)
        [handler] = root.handlers
        assert isinstance(handler, logging.StreamHandler)
        assert handler.stream is sys.stderr
        return lines

    try:
        yield start
    finally:
        structlog.reset_defaults()
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        logging.getLogger("temporalio.activity").setLevel(activity_level)


def _raw_output(records: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(record) for record in records)


def test_personal_data_and_secrets_never_reach_the_log(json_logs: Callable[[], Reader]) -> None:
    read = json_logs()
    log = get_logger(f"test.redaction.{uuid.uuid4().hex}")
    log.info(f"sent to {EMAIL} and {PHONE}", channel="email")
    log.info("call placed", detail=f"dial {US_PHONE} now", to=PHONE)
    log.info("provider call", header=BEARER, note=f"auth was {BEARER}")
    log.info("webhook", detail=f"signing with {WEBHOOK_SECRET}", url="https://h.example/in")
    log.info(
        "credentials",
        token="tok-123456",
        password="hunter2-password",
        api_key="key-abcdef",
        ApiKey="key-abcdef",
    )
    log.info(
        "nested",
        lead={
            "contact": {"email": EMAIL, "phones": [PHONE, US_PHONE]},
            "auth": {"refresh_token": "nested-token-value"},
            "tags": ("x", "second.person@example.org"),
        },
        batch=[{"email": EMAIL}, [PHONE]],
    )
    try:
        raise ValueError(f"no mailbox for {EMAIL}")
    except ValueError:
        log.exception("sync failed")

    records = read()
    output = _raw_output(records)
    assert len(records) == 7
    for raw in RAW_VALUES:
        assert raw not in output, raw

    by_event = {record["event"]: record for record in records}
    assert by_event["sent to [email] and [phone]"]["channel"] == "email"
    assert by_event["call placed"]["to"] == "[phone]"
    assert by_event["call placed"]["detail"] == "dial [phone] now"
    assert by_event["provider call"]["header"] == f"Bearer {REDACTED}"
    assert by_event["webhook"]["detail"] == f"signing with whsec_{REDACTED}"
    assert by_event["webhook"]["url"] == "https://h.example/in"
    creds = by_event["credentials"]
    assert [creds[k] for k in ("token", "password", "api_key", "ApiKey")] == [REDACTED] * 4
    assert by_event["nested"]["lead"] == {
        "contact": {"email": "[email]", "phones": ["[phone]", "[phone]"]},
        "auth": {"refresh_token": REDACTED},
        "tags": ["x", "[email]"],
    }
    assert by_event["nested"]["batch"] == [{"email": "[email]"}, ["[phone]"]]
    failed = by_event["sync failed"]
    assert "ValueError: no mailbox for [email]" in failed["exception"]
    assert failed["level"] == "error"


def test_stdlib_and_sdk_records_are_redacted_too(json_logs: Callable[[], Reader]) -> None:
    read = json_logs()
    logging.getLogger("temporalio.worker").warning("activity for %s failed", EMAIL)
    try:
        raise RuntimeError(f"webhook {WEBHOOK_SECRET} rejected for {PHONE}")
    except RuntimeError:
        logging.getLogger("some.library").exception("boom", extra={"customer": EMAIL})

    records = read()
    output = _raw_output(records)
    assert len(records) == 2
    for raw in (EMAIL, PHONE, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"):
        assert raw not in output
    assert records[0]["event"] == "activity for [email] failed"
    assert records[0]["logger"] == "temporalio.worker"
    assert records[1]["customer"] == "[email]"
    assert "RuntimeError: webhook whsec_[redacted] rejected for [phone]" in records[1]["exception"]


def test_ordinary_ids_numbers_and_timestamps_are_kept(json_logs: Callable[[], Reader]) -> None:
    read = json_logs()
    job_hex = uuid.UUID(int=0x12345678123456781234567812345678).hex  # all digits
    dashed = "123e4567-e89b-12d3-a456-426614174000"  # the RFC 4122 example
    all_digit_uuid = str(uuid.UUID(int=0x12345678123456781234567812345678))
    delivery = "webhook_delivery-0123456789abcdef0123456789abcdef"
    kept: dict[str, Any] = {
        "job_id": job_hex,
        "run_id": dashed,
        "workflow_id": all_digit_uuid,
        "delivery_id": delivery,
        "scheduled_at": "2025-06-01T12:34:56.123456+00:00",
        "finished_at": "2025-06-01T12:34:56.789Z",
        "date": "2025-06-01",
        "offset": "1748781296123-0",
        "epoch_ms": "1748781296123",
        "address": "93.184.216.34",
        "attempt": 3,
        "duration_s": 12.5,
        "duration_text": "took 12.5 s",
        "status_code": 503,
    }
    get_logger("test.ids").info(f"job {delivery} attempt 3 of 5 after 12.5 s", **kept)

    [record] = read()
    for key, value in kept.items():
        assert record[key] == value, key
    assert record["event"] == f"job {delivery} attempt 3 of 5 after 12.5 s"
    # The line's own timestamp is an ISO timestamp, untouched.
    assert record["timestamp"].endswith("Z")
    assert "[phone]" not in record["timestamp"]


@pytest.mark.parametrize(
    "text",
    [
        "+14155550123",
        "(415) 555-0123",
        "415-555-0123",
        "415.555.0123",
        "+1 415 555 0123",
        "+1 (415) 555-0123",
        "+44 20 7946 0958",
        "+442079460958",
    ],
)
def test_phone_formats_are_redacted(text: str) -> None:
    assert redact_text(f"call {text}.") == "call [phone]."
    assert redact_text(f"({text})") == "([phone])"


@pytest.mark.parametrize("text", ["+3", "+12345", "1e+10", "v1.2.3", "port 7233", "12:00:00+05:30"])
def test_short_numbers_are_not_phones(text: str) -> None:
    assert redact_text(text) == text


def test_redact_value_keeps_types_it_does_not_understand() -> None:
    assert redact_value(3, "attempt") == 3
    assert redact_value(None, "password") is None
    assert redact_value("", "token") == ""
    assert redact_value(True, "phone_verified") is True
    assert redact_value("4155550123", "phone") == "[phone]"


def _activity_failure(exc: BaseException) -> None:
    try:
        raise exc
    except BaseException:
        logging.getLogger("temporalio.activity").warning(
            "Completing activity as failed ({'activity_id': '1'})",
            exc_info=True,
            extra={"temporal_activity": {"workflow_id": "job-1", "attempt": 1}},
        )


def test_expected_activity_failures_leave_no_traceback(json_logs: Callable[[], Reader]) -> None:
    from temporalio.exceptions import ApplicationError

    read = json_logs()
    _activity_failure(ApplicationError("HTTP 410", type="DeliveryRejected", non_retryable=True))
    _activity_failure(ApplicationError("HTTP 503", type="DeliveryFailed"))
    # The lifecycle log already says it in one line (job.retrying / job.failed).
    assert read() == []
    _activity_failure(KeyError("a bug"))
    [record] = read()
    assert "Traceback" in record["exception"] and "KeyError" in record["exception"]


def test_one_timestamp_format_before_and_after_configuration(
    json_logs: Callable[[], Reader], capsys: pytest.CaptureFixture[str]
) -> None:
    import re

    structlog.reset_defaults()
    import core.logging

    core.logging._configure_structlog_default()
    get_logger("test.default").info("before.configure", to=EMAIL)
    line = capsys.readouterr().err.strip()
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z \[info", line), line
    assert EMAIL not in line
    read = json_logs()
    get_logger("test.default").info("after.configure")
    [record] = read()
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$", record["timestamp"])
