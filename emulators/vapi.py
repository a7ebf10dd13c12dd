"""A loopback Vapi calls API (providers.md 4) whose calls ring, answer and end by script.

``POST /call`` checks the bearer key and the body like the real API and starts a call that
moves ``queued -> ringing -> in-progress -> ended`` on the delays of its ``Script`` (chosen by
the customer's number, else ``state.default``), ending with the script's ``endedReason``,
transcript, recording URL and cost. ``GET /call/{id}`` reads a call; ``POST
/call/{id}/control`` with ``{"type": "end-call"}`` (the call's ``monitor.controlUrl``) ends a
live call. When ``state.server_url`` is set, every status change is POSTed there as a
``status-update`` server message and the end as an ``end-of-call-report``, with the shared
secret in ``X-Vapi-Secret``. ``state.faults`` injects answers per route (``call.create``,
``call.get``, ``call.control``); ``state.max_in_flight`` records the most calls live at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from emulators.server import Fault, Faults

DEFAULT_API_KEY = "vapi-emulator-key"
DEFAULT_PHONE_NUMBER_ID = "pn-emulator"
DEFAULT_ASSISTANT_ID = "asst-emulator"
DEFAULT_SERVER_SECRET = "vapi-emulator-server-secret"
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
LIVE = ("queued", "ringing", "in-progress")


@dataclass(frozen=True)
class Script:
    """How a call goes: seconds ringing, seconds talking (0 when never answered), the ending.

    ``end_after_s=None`` keeps the call going until it is ended through its control URL."""

    ended_reason: str = "customer-ended-call"
    ring_s: float = 0.05
    talk_s: float = 0.2
    end_after_s: float | None = 0.0
    transcript: str = "AI: Hello, this is a call from Bottleneck Bots.\nUser: Thanks, bye."
    cost: float = 0.0425

    @property
    def answered(self) -> bool:
        return self.ended_reason not in ("customer-did-not-answer", "customer-busy")


# Scripts for each business outcome, as the tests and the demo use them.
COMPLETED = Script()
NO_ANSWER = Script(ended_reason="customer-did-not-answer", ring_s=0.1, talk_s=0, transcript="")
BUSY = Script(ended_reason="customer-busy", ring_s=0.02, talk_s=0, transcript="", cost=0.0)
VOICEMAIL = Script(ended_reason="voicemail", talk_s=0.1, transcript="AI: Hi, sorry I missed you.")
FAILED_TO_CONNECT = Script(
    ended_reason="twilio-failed-to-connect-call", ring_s=0.02, talk_s=0, transcript="", cost=0.0
)
NEVER_ENDS = Script(end_after_s=None, talk_s=0)


@dataclass
class EmulatedCall:
    id: str
    body: dict[str, Any]
    script: Script
    status: str = "queued"
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started_at: datetime | None = None
    ended_at: datetime | None = None
    ended_reason: str | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class VapiState:
    api_keys: set[str] = field(default_factory=lambda: {DEFAULT_API_KEY})
    phone_number_ids: set[str] = field(default_factory=lambda: {DEFAULT_PHONE_NUMBER_ID})
    default: Script = COMPLETED
    # Scripts by customer number (the tests pick each call's ending this way); a sequence
    # gives successive calls to the number successive scripts (the last one repeats).
    scripts: dict[str, Script] = field(default_factory=dict)
    sequences: dict[str, list[Script]] = field(default_factory=dict)
    server_url: str | None = None
    server_secret: str = DEFAULT_SERVER_SECRET
    faults: Faults = field(default_factory=Faults)
    calls: dict[str, EmulatedCall] = field(default_factory=dict)
    # Every create request received (including refused ones), and the most calls live at once.
    create_requests: int = 0
    max_in_flight: int = 0
    server_messages_sent: list[dict[str, Any]] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def in_flight(self) -> int:
        return sum(1 for call in self.calls.values() if call.status in LIVE)

    def script_for(self, number: str) -> Script:
        sequence = self.sequences.get(number)
        if sequence:
            return sequence.pop(0) if len(sequence) > 1 else sequence[0]
        return self.scripts.get(number, self.default)

    def calls_to(self, number: str) -> list[EmulatedCall]:
        return [c for c in self.calls.values() if c.body["customer"]["number"] == number]


def _error(status: int, message: str | list[str], error: str) -> JSONResponse:
    return JSONResponse({"message": message, "error": error, "statusCode": status}, status)


def _fault_response(fault: Fault) -> Response:
    body = fault.body or {"message": "injected fault", "statusCode": fault.status}
    return JSONResponse(body, fault.status, headers=fault.headers)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def call_json(call: EmulatedCall, base_url: str) -> dict[str, Any]:
    ended = call.status == "ended"
    body = call.body
    return {
        "id": call.id,
        "orgId": "org-emulator",
        "type": "outboundPhoneCall",
        "status": call.status,
        "assistantId": body.get("assistantId"),
        "phoneNumberId": body.get("phoneNumberId"),
        "customer": body.get("customer"),
        "assistantOverrides": body.get("assistantOverrides"),
        "createdAt": _iso(call.created_at),
        "updatedAt": _iso(datetime.now(UTC)),
        "startedAt": _iso(call.started_at),
        "endedAt": _iso(call.ended_at),
        "endedReason": call.ended_reason,
        "cost": call.script.cost if ended else 0,
        "artifact": {
            "transcript": call.script.transcript if ended else "",
            "recordingUrl": (
                f"{base_url}/recordings/{call.id}.wav" if ended and call.started_at else None
            ),
        },
        "monitor": {"controlUrl": f"{base_url}/call/{call.id}/control"},
    }


def create_app(state: VapiState) -> FastAPI:
    app = FastAPI(title="Vapi emulator")
    http = httpx.AsyncClient(timeout=5.0)

    def authorised(request: Request) -> bool:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and key in state.api_keys

    def base_of(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    async def post_message(message: dict[str, Any]) -> None:
        if state.server_url is None:
            return
        state.server_messages_sent.append(message)
        # Vapi sends each message once; a receiver that is down simply misses it.
        with contextlib.suppress(httpx.HTTPError):
            await http.post(
                state.server_url,
                json={"message": message},
                headers={"X-Vapi-Secret": state.server_secret},
            )

    async def set_status(call: EmulatedCall, status: str, base_url: str) -> None:
        call.status = status
        message: dict[str, Any] = {
            "type": "status-update",
            "status": status,
            "call": call_json(call, base_url),
            "timestamp": int(datetime.now(UTC).timestamp() * 1000),
        }
        if status == "ended":
            message["endedReason"] = call.ended_reason
        await post_message(message)

    async def end(call: EmulatedCall, reason: str, base_url: str) -> None:
        if call.status == "ended":
            return
        call.ended_reason = reason
        call.ended_at = datetime.now(UTC)
        await set_status(call, "ended", base_url)
        call.ended.set()
        payload = call_json(call, base_url)
        await post_message(
            {
                "type": "end-of-call-report",
                "endedReason": reason,
                "cost": payload["cost"],
                "artifact": payload["artifact"],
                "call": payload,
                "timestamp": int(datetime.now(UTC).timestamp() * 1000),
            }
        )

    async def run_call(call: EmulatedCall, base_url: str) -> None:
        script = call.script
        await asyncio.sleep(0.01)
        await set_status(call, "ringing", base_url)
        await asyncio.sleep(script.ring_s)
        if call.status == "ended":
            return
        if script.answered:
            call.started_at = datetime.now(UTC)
            await set_status(call, "in-progress", base_url)
            await asyncio.sleep(script.talk_s)
        if script.end_after_s is None:
            await call.ended.wait()
            return
        await asyncio.sleep(script.end_after_s)
        await end(call, script.ended_reason, base_url)

    @app.post("/call")
    async def create_call(request: Request) -> Response:
        state.create_requests += 1
        if fault := state.faults.next("call.create"):
            await asyncio.sleep(fault.delay_s)
            return _fault_response(fault)
        if not authorised(request):
            return _error(
                401, "Invalid Key. Hot tip, you may be using the private key", "Unauthorized"
            )
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "body must be JSON", "Bad Request")
        problems = []
        customer = body.get("customer") if isinstance(body, dict) else None
        if not isinstance(body, dict):
            problems.append("body must be an object")
        else:
            if not body.get("assistantId"):
                problems.append("assistantId must be a string")
            if body.get("phoneNumberId") not in state.phone_number_ids:
                problems.append("phoneNumberId must be a phone number of the org")
            number = customer.get("number") if isinstance(customer, dict) else None
            if not _E164.match(str(number)):
                # Echoed as some APIs do, so the tests see that the client scrubs it.
                problems.append(f"customer.number must be a valid E.164 number, got {number}")
        if problems:
            return _error(400, problems, "Bad Request")
        number = customer["number"] if isinstance(customer, dict) else ""
        call = EmulatedCall(id=str(uuid.uuid4()), body=body, script=state.script_for(number))
        state.calls[call.id] = call
        state.max_in_flight = max(state.max_in_flight, state.in_flight())
        task = asyncio.create_task(run_call(call, base_of(request)))
        state._tasks.add(task)
        task.add_done_callback(state._tasks.discard)
        return JSONResponse(call_json(call, base_of(request)), 201)

    @app.get("/call/{call_id}")
    async def get_call(call_id: str, request: Request) -> Response:
        if fault := state.faults.next("call.get"):
            await asyncio.sleep(fault.delay_s)
            return _fault_response(fault)
        if not authorised(request):
            return _error(401, "Invalid Key", "Unauthorized")
        call = state.calls.get(call_id)
        if call is None:
            return _error(404, "Couldn't Get Call. Call Not Found", "Not Found")
        return JSONResponse(call_json(call, base_of(request)))

    @app.post("/call/{call_id}/control")
    async def control(call_id: str, request: Request) -> Response:
        if fault := state.faults.next("call.control"):
            await asyncio.sleep(fault.delay_s)
            return _fault_response(fault)
        call = state.calls.get(call_id)
        if call is None:
            return _error(404, "Call Not Found", "Not Found")
        body = await request.json()
        if not isinstance(body, dict) or body.get("type") != "end-call":
            return _error(400, "type must be end-call", "Bad Request")
        await end(call, "manually-canceled", base_of(request))
        return JSONResponse({"ok": True})

    @app.get("/recordings/{_name}")
    async def recording(_name: str) -> Response:
        return Response(b"RIFF\x00\x00\x00\x00WAVE", media_type="audio/wav")

    return app


def main(argv: list[str] | None = None) -> None:
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description="Loopback Vapi calls API emulator")
    parser.add_argument("--port", type=int, default=8304)
    parser.add_argument("--server-url", help="where to POST server messages")
    args = parser.parse_args(argv)
    app = create_app(VapiState(server_url=args.server_url))
    print(f"vapi emulator listening on http://127.0.0.1:{args.port}", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
