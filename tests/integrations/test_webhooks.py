"""Signing, target checks and response classification of outbound webhooks.

Classification runs against the real loopback WebhookReceiver; target refusals that must
not touch the network run against an httpx.MockTransport that fails the test if called.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import ssl
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from emulators.webhook_receiver import ScriptedResponse, WebhookReceiver, new_secret
from integrations.errors import parse_retry_after
from integrations.targets import TargetForbidden, resolve_public_target
from integrations.webhooks import (
    DeliveryOutcome,
    WebhookSender,
    sign,
    signing_key,
    verify,
)

BODY = json.dumps({"type": "lead.created", "data": {"id": 7}}).encode()


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver() as running:
        yield running


@pytest_asyncio.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(follow_redirects=False, timeout=10.0) as shared:
        yield shared


@pytest.fixture
def sender(client: httpx.AsyncClient) -> WebhookSender:
    # The receiver listens on loopback, which production refuses.
    return WebhookSender(client, allow_private_targets=True)


async def _deliver(
    sender: WebhookSender, receiver: WebhookReceiver, path: str = "/hook", msg_id: str = "msg_1"
) -> DeliveryOutcome:
    return await sender.deliver(
        url=receiver.url(path),
        msg_id=msg_id,
        timestamp=int(time.time()),
        body=BODY,
        secret=receiver.secret,
    )


class NoNetwork:
    """A transport that records requests and refuses to send any."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200)


# --- signing ------------------------------------------------------------------------------


def test_sign_matches_the_standard_webhooks_vector() -> None:
    # Published test vector of the Standard Webhooks reference libraries.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == expected


def test_sign_matches_an_independent_hmac() -> None:
    key = bytes(range(32))
    secret = "whsec_" + base64.b64encode(key).decode()
    digest = hmac.new(key, b"msg_abc.1700000000." + BODY, hashlib.sha256).digest()
    assert sign(secret, "msg_abc", 1700000000, BODY) == "v1," + base64.b64encode(digest).decode()
    assert signing_key(secret) == key


def test_signing_key_rejects_non_base64() -> None:
    with pytest.raises(ValueError, match="base64"):
        signing_key("whsec_not base64!")


def _headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "Webhook-Id": msg_id,
        "Webhook-Timestamp": str(timestamp),
        "Webhook-Signature": sign(secret, msg_id, timestamp, body),
    }


def test_verify_accepts_fresh_and_rotated_signatures() -> None:
    old, new = new_secret(), new_secret()
    headers = _headers(new, "msg_1", 1_700_000_000, BODY)
    assert verify(new, headers, BODY, now=1_700_000_000)
    assert verify(new, headers, BODY, now=1_700_000_000 + 300)
    # During rotation the sender lists one signature per key.
    rotated = dict(
        headers,
        **{
            "Webhook-Signature": f"{sign(old, 'msg_1', 1_700_000_000, BODY)} "
            f"{headers['Webhook-Signature']}"
        },
    )
    assert verify(new, rotated, BODY, now=1_700_000_000)
    assert verify(old, rotated, BODY, now=1_700_000_000)


def test_verify_rejects_bad_signatures_and_stale_timestamps() -> None:
    secret = new_secret()
    ts = 1_700_000_000
    headers = _headers(secret, "msg_1", ts, BODY)
    assert not verify(secret, headers, BODY + b" ", now=ts)  # body changed
    assert not verify(new_secret(), headers, BODY, now=ts)  # other key
    assert not verify(secret, dict(headers, **{"Webhook-Id": "msg_2"}), BODY, now=ts)
    assert not verify(secret, headers, BODY, now=ts + 301)  # too old
    assert not verify(secret, headers, BODY, now=ts - 301)  # too far in the future
    assert not verify(secret, headers, BODY, tolerance_s=10, now=ts + 11)
    assert not verify(secret, dict(headers, **{"Webhook-Timestamp": "soon"}), BODY, now=ts)
    version_two = headers["Webhook-Signature"].replace("v1,", "v2,")
    assert not verify(secret, dict(headers, **{"Webhook-Signature": version_two}), BODY, now=ts)
    assert not verify(secret, dict(headers, **{"Webhook-Signature": "v1,%%%"}), BODY, now=ts)
    assert not verify(secret, {"webhook-id": "msg_1"}, BODY, now=ts)
    assert not verify("whsec_!!", headers, BODY, now=ts)


# --- classification against the receiver ---------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, "delivered"),
        (204, "delivered"),
        (400, "permanent"),
        (404, "permanent"),
        (408, "retry"),
        (410, "permanent"),
        (422, "permanent"),
        (425, "retry"),
        (429, "retry"),
        (500, "retry"),
        (503, "retry"),
    ],
)
async def test_status_classification(
    sender: WebhookSender, receiver: WebhookReceiver, status: int, kind: str
) -> None:
    receiver.script("/hook", [ScriptedResponse(status=status, body=b"nope " * 100)])
    outcome = await _deliver(sender, receiver)
    assert (outcome.kind, outcome.status_code) == (kind, status)
    assert outcome.duration_ms > 0
    if kind == "delivered":
        assert outcome.error is None
    else:
        assert outcome.error is not None
        assert outcome.error.startswith(f"HTTP {status}")
        assert len(outcome.error) <= 200


@pytest.mark.asyncio
async def test_redirects_are_permanent_and_not_followed(
    sender: WebhookSender, receiver: WebhookReceiver
) -> None:
    receiver.script("/hook", [ScriptedResponse.redirect(receiver.url("/elsewhere"))])
    outcome = await _deliver(sender, receiver)
    assert (outcome.kind, outcome.status_code) == ("permanent", 302)
    assert outcome.error == "redirects are not followed (HTTP 302)"
    assert receiver.requests("/elsewhere") == []


@pytest.mark.asyncio
async def test_retry_after_seconds(sender: WebhookSender, receiver: WebhookReceiver) -> None:
    receiver.script(
        "/hook",
        [
            ScriptedResponse(status=429, headers={"Retry-After": "120"}),
            ScriptedResponse(status=503, headers={"Retry-After": "86400"}),
            ScriptedResponse(status=429, headers={"Retry-After": "soon"}),
        ],
    )
    assert (await _deliver(sender, receiver)).retry_after == 120.0
    assert (await _deliver(sender, receiver)).retry_after == 3600.0  # capped at an hour
    assert (await _deliver(sender, receiver)).retry_after is None


@pytest.mark.asyncio
async def test_retry_after_http_date(sender: WebhookSender, receiver: WebhookReceiver) -> None:
    when = datetime.now(UTC) + timedelta(seconds=90)
    receiver.script(
        "/hook",
        [ScriptedResponse(status=429, headers={"Retry-After": format_datetime(when, usegmt=True)})],
    )
    outcome = await _deliver(sender, receiver)
    assert outcome.kind == "retry"
    assert outcome.retry_after is not None
    assert 80.0 <= outcome.retry_after <= 90.0


def test_parse_retry_after_dates() -> None:
    now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0.0  # in the past
    assert parse_retry_after("Thu, 02 Jan 2025 12:00:00 GMT", now=now) == 3600.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("-5") is None


@pytest.mark.asyncio
async def test_slow_receiver_times_out_as_retry(receiver: WebhookReceiver) -> None:
    receiver.script("/hook", [ScriptedResponse(delay_s=30.0)])
    async with httpx.AsyncClient(follow_redirects=False, timeout=0.5) as client:
        outcome = await _deliver(WebhookSender(client, allow_private_targets=True), receiver)
    assert (outcome.kind, outcome.status_code) == ("retry", None)
    assert outcome.error == "timeout: ReadTimeout"
    assert outcome.duration_ms >= 500


@pytest.mark.asyncio
async def test_connection_refused_is_retry(sender: WebhookSender) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcome = await sender.deliver(
        url=f"http://127.0.0.1:{port}/hook",
        msg_id="m",
        timestamp=int(time.time()),
        body=BODY,
        secret=new_secret(),
    )
    assert (outcome.kind, outcome.status_code) == ("retry", None)
    assert outcome.error is not None and outcome.error.startswith("transport error: ConnectError")


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [200, 500])
async def test_abort_message_header_is_permanent(
    sender: WebhookSender, receiver: WebhookReceiver, status: int
) -> None:
    receiver.script(
        "/hook", [ScriptedResponse(status=status, headers={"webhook-delivery": "abort-message"})]
    )
    outcome = await _deliver(sender, receiver)
    assert (outcome.kind, outcome.status_code) == ("permanent", status)
    assert outcome.error is not None and "abort-message" in outcome.error


@pytest.mark.asyncio
async def test_receiver_sees_valid_signature_and_stable_id(
    sender: WebhookSender, receiver: WebhookReceiver
) -> None:
    receiver.script("/hook", [ScriptedResponse(status=503)])
    assert (await _deliver(sender, receiver, msg_id="msg_stable")).kind == "retry"
    assert (await _deliver(sender, receiver, msg_id="msg_stable")).kind == "delivered"

    seen = await receiver.wait_for_requests("/hook", 2, timeout=5)
    assert [r.headers["webhook-id"] for r in seen] == ["msg_stable", "msg_stable"]
    assert all(r.signature_valid for r in seen)
    for request in seen:
        assert request.method == "POST"
        assert request.body == BODY
        assert request.headers["content-type"] == "application/json"
        assert request.headers["user-agent"] == "BottleneckBots-Webhooks/1"
        assert request.headers["host"] == f"127.0.0.1:{receiver.port}"


@pytest.mark.asyncio
async def test_receiver_flags_a_wrong_signature(
    sender: WebhookSender, receiver: WebhookReceiver
) -> None:
    outcome = await sender.deliver(
        url=receiver.url(), msg_id="m", timestamp=int(time.time()), body=BODY, secret=new_secret()
    )
    assert outcome.kind == "delivered"  # the receiver only records; it answers 200 anyway
    assert [r.signature_valid for r in receiver.requests("/hook")] == [False]


@pytest.mark.asyncio
async def test_receiver_keeps_connections_alive(
    sender: WebhookSender, receiver: WebhookReceiver
) -> None:
    outcomes = [await _deliver(sender, receiver, msg_id=f"m{i}") for i in range(25)]
    assert {o.kind for o in outcomes} == {"delivered"}
    assert receiver.connections_accepted == 1
    concurrent = await asyncio.gather(
        *(_deliver(sender, receiver, "/burst", f"b{i}") for i in range(50))
    )
    assert {o.kind for o in concurrent} == {"delivered"}
    assert len(await receiver.wait_for_requests("/burst", 50, timeout=5)) == 50


@pytest.mark.asyncio
async def test_receiver_reads_chunked_bodies(
    client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"a":'
        yield b" 1}"

    response = await client.post(receiver.url("/chunked?x=1"), content=chunks())
    assert response.status_code == 200
    [request] = receiver.requests("/chunked")
    assert (request.body, request.query) == (b'{"a": 1}', "x=1")
    assert request.headers["transfer-encoding"] == "chunked"


@pytest.mark.asyncio
async def test_wait_for_requests_times_out(receiver: WebhookReceiver) -> None:
    with pytest.raises(TimeoutError):
        await receiver.wait_for_requests("/never", 1, timeout=0.05)


# --- target address checks ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_loopback_target_refused_unless_allowed(
    client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    refused = await _deliver(WebhookSender(client, allow_private_targets=False), receiver)
    assert (refused.kind, refused.status_code) == ("permanent", None)
    assert refused.error == "target address is not public"
    assert receiver.requests() == []
    assert receiver.connections_accepted == 0

    allowed = await _deliver(WebhookSender(client, allow_private_targets=True), receiver)
    assert allowed.kind == "delivered"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8080/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/hook",
        "https://10.0.0.1/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::1]/hook",
        "http://0.0.0.0/hook",
        "http://100.64.0.1/hook",
        "http://224.0.0.1/hook",
    ],
)
async def test_private_targets_refused_before_any_connection(url: str) -> None:
    network = NoNetwork()
    async with httpx.AsyncClient(transport=httpx.MockTransport(network)) as client:
        outcome = await WebhookSender(client, allow_private_targets=False).deliver(
            url=url, msg_id="m", timestamp=int(time.time()), body=BODY, secret=new_secret()
        )
    assert (outcome.kind, outcome.error) == ("permanent", "target address is not public")
    assert network.requests == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "127.0.0.1",
        "169.254.169.254",
        "10.0.0.1",
        "::ffff:127.0.0.1",
        "::ffff:10.1.2.3",
    ],
)
async def test_resolve_public_target_refuses(host: str) -> None:
    with pytest.raises(TargetForbidden):
        await resolve_public_target(host, 80, allow_private=False)


@pytest.mark.asyncio
async def test_resolve_public_target_allows() -> None:
    assert await resolve_public_target("93.184.216.34", 443, allow_private=False) == "93.184.216.34"
    assert await resolve_public_target("127.0.0.1", 80, allow_private=True) == "127.0.0.1"


def _fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> None:
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def getaddrinfo(host: str, port: int, **kwargs: Any) -> list[Any]:
        if host not in answers:  # e.g. the connect to the pinned IP itself
            return await real(host, port, **kwargs)
        family = socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port)) for address in answers[host]]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)


@pytest.mark.asyncio
async def test_any_private_answer_refuses_the_name(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_dns(monkeypatch, {"rebind.example.com": ["93.184.216.34", "127.0.0.1"]})
    with pytest.raises(TargetForbidden):
        await resolve_public_target("rebind.example.com", 443, allow_private=False)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("url", "host_header", "pinned"),
    [
        ("https://hooks.example.com/in?a=1", "hooks.example.com", "https://93.184.216.34/in?a=1"),
        (
            "http://hooks.example.com:8080/in",
            "hooks.example.com:8080",
            "http://93.184.216.34:8080/in",
        ),
    ],
)
async def test_connection_is_pinned_to_the_checked_address(
    monkeypatch: pytest.MonkeyPatch, url: str, host_header: str, pinned: str
) -> None:
    _fake_dns(monkeypatch, {"hooks.example.com": ["93.184.216.34"]})
    network = NoNetwork()
    async with httpx.AsyncClient(transport=httpx.MockTransport(network)) as client:
        outcome = await WebhookSender(client, allow_private_targets=False).deliver(
            url=url, msg_id="m", timestamp=1_700_000_000, body=BODY, secret=new_secret()
        )
    assert outcome.kind == "delivered"
    [request] = network.requests
    assert str(request.url) == pinned
    assert request.headers["host"] == host_header
    if url.startswith("https"):
        # TLS still names and verifies the original host.
        assert request.extensions["sni_hostname"] == "hooks.example.com"
    else:
        assert "sni_hostname" not in request.extensions


# --- TLS: the pinned connection still names and verifies the host ---------------------------


def _tls_contexts(cert_name: str, *more_names: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a leaf for the given names and a client context trusting its CA."""
    now = datetime.now(UTC)

    def build(
        subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, signer: Any, ca: bool
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName(name) for name in (subject, *more_names)]
                ),
                critical=False,
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = build("test ca", ca_key, "test ca", ca_key, ca=True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_cert = build(cert_name, leaf_key, "test ca", ca_key, ca=False)

    pem = serialization.Encoding.PEM
    client_ctx = ssl.create_default_context(cadata=ca_cert.public_bytes(pem).decode())
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as tmp:
        cert_file, key_file = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        cert_file.write_bytes(leaf_cert.public_bytes(pem))
        key_file.write_bytes(
            leaf_key.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        server_ctx.load_cert_chain(cert_file, key_file)
    return server_ctx, client_ctx


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("cert_name", "kind"), [("hooks.example.test", "delivered"), ("other.example.test", "retry")]
)
async def test_https_delivery_to_a_pinned_address_sends_sni_and_verifies_the_host(
    monkeypatch: pytest.MonkeyPatch, cert_name: str, kind: str
) -> None:
    server_ctx, client_ctx = _tls_contexts(cert_name)
    server_names: list[str | None] = []
    server_ctx.sni_callback = lambda _sock, name, _ctx: server_names.append(name)
    _fake_dns(monkeypatch, {"hooks.example.test": ["127.0.0.1"]})

    async with (
        WebhookReceiver(ssl=server_ctx) as receiver,
        httpx.AsyncClient(verify=client_ctx, follow_redirects=False, timeout=10.0) as client,
    ):
        outcome = await WebhookSender(client, allow_private_targets=True).deliver(
            url=f"https://hooks.example.test:{receiver.port}/hook",
            msg_id="msg_tls",
            timestamp=int(time.time()),
            body=BODY,
            secret=receiver.secret,
        )
        received = receiver.requests("/hook")

    assert server_names == ["hooks.example.test"]
    assert outcome.kind == kind
    if kind == "delivered":
        [request] = received
        assert request.signature_valid
        assert request.headers["host"] == f"hooks.example.test:{receiver.port}"
    else:
        # A certificate for another name fails verification: the IP alone is not trusted.
        assert outcome.error is not None and "CERTIFICATE_VERIFY_FAILED" in outcome.error
        assert received == []


# --- TLS: a pooled connection is only reused for the host it was verified for --------------


async def _deliver_to(sender: WebhookSender, host: str, port: int, msg_id: str) -> DeliveryOutcome:
    return await sender.deliver(
        url=f"https://{host}:{port}/hook",
        msg_id=msg_id,
        timestamp=int(time.time()),
        body=BODY,
        secret=new_secret(),
    )


@pytest.mark.asyncio
async def test_hosts_sharing_an_address_never_share_a_tls_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The certificate names only the first host. Were the connection verified for it reused
    # for the second host at the same address, the second delivery would succeed unverified.
    server_ctx, client_ctx = _tls_contexts("first.example.test")
    server_names: list[str | None] = []
    server_ctx.sni_callback = lambda _sock, name, _ctx: server_names.append(name)
    _fake_dns(
        monkeypatch, {"first.example.test": ["127.0.0.1"], "second.example.test": ["127.0.0.1"]}
    )

    async with (
        WebhookReceiver(ssl=server_ctx) as receiver,
        httpx.AsyncClient(verify=client_ctx, follow_redirects=False, timeout=10.0) as client,
    ):
        sender = WebhookSender(client, allow_private_targets=True)
        first = await _deliver_to(sender, "first.example.test", receiver.port, "m1")
        second = await _deliver_to(sender, "second.example.test", receiver.port, "m2")
        await sender.aclose()
        received = receiver.requests("/hook")

    assert first.kind == "delivered"
    assert second.kind == "retry"
    assert second.error is not None and "CERTIFICATE_VERIFY_FAILED" in second.error
    assert server_names == ["first.example.test", "second.example.test"]
    assert [r.headers["webhook-id"] for r in received] == ["m1"]


@pytest.mark.asyncio
async def test_each_tls_host_keeps_its_own_reused_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server_ctx, client_ctx = _tls_contexts("first.example.test", "second.example.test")
    server_names: list[str | None] = []
    server_ctx.sni_callback = lambda _sock, name, _ctx: server_names.append(name)
    _fake_dns(
        monkeypatch, {"first.example.test": ["127.0.0.1"], "second.example.test": ["127.0.0.1"]}
    )

    async with (
        WebhookReceiver(ssl=server_ctx) as receiver,
        httpx.AsyncClient(verify=client_ctx, follow_redirects=False, timeout=10.0) as client,
    ):
        sender = WebhookSender(client, allow_private_targets=True)
        outcomes = [
            await _deliver_to(sender, host, receiver.port, f"m{i}")
            for i, host in enumerate(["first.example.test", "second.example.test"] * 3)
        ]
        await sender.aclose()
        received = receiver.requests("/hook")

    assert {o.kind for o in outcomes} == {"delivered"}
    # One handshake per host, then keep-alive reuse within each host only.
    assert receiver.connections_accepted == 2
    assert server_names == ["first.example.test", "second.example.test"]
    assert [r.headers["host"].split(":")[0] for r in received] == [
        "first.example.test",
        "second.example.test",
    ] * 3


@pytest.mark.asyncio
async def test_least_recently_used_tls_pools_are_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server_ctx, client_ctx = _tls_contexts("first.example.test", "second.example.test")
    _fake_dns(
        monkeypatch, {"first.example.test": ["127.0.0.1"], "second.example.test": ["127.0.0.1"]}
    )
    closed: list[httpx.AsyncHTTPTransport] = []
    real_aclose = httpx.AsyncHTTPTransport.aclose

    async def counting_aclose(self: httpx.AsyncHTTPTransport) -> None:
        closed.append(self)
        await real_aclose(self)

    monkeypatch.setattr(httpx.AsyncHTTPTransport, "aclose", counting_aclose)

    async with (
        WebhookReceiver(ssl=server_ctx) as receiver,
        httpx.AsyncClient(verify=client_ctx, follow_redirects=False, timeout=10.0) as client,
    ):
        sender = WebhookSender(client, allow_private_targets=True, max_tls_hosts=1)
        for i, host in enumerate(["first.example.test", "second.example.test"]):
            assert (await _deliver_to(sender, host, receiver.port, f"m{i}")).kind == "delivered"
        assert len(closed) == 1  # the first host's pool, evicted by the second
        assert (await _deliver_to(sender, "first.example.test", receiver.port, "m2")).kind == (
            "delivered"
        )
        assert len(closed) == 2
        assert receiver.connections_accepted == 3
        await sender.aclose()
        assert len(closed) == 3
        assert client._transport not in closed  # the injected client belongs to its owner
        assert not client.is_closed


@pytest.mark.asyncio
async def test_plain_http_hosts_share_the_injected_client(
    monkeypatch: pytest.MonkeyPatch, receiver: WebhookReceiver, client: httpx.AsyncClient
) -> None:
    # Plain HTTP has no certificate to check: the Host header alone names the target.
    _fake_dns(
        monkeypatch, {"first.example.test": ["127.0.0.1"], "second.example.test": ["127.0.0.1"]}
    )
    sender = WebhookSender(client, allow_private_targets=True)
    for i, host in enumerate(["first.example.test", "second.example.test"]):
        outcome = await sender.deliver(
            url=f"http://{host}:{receiver.port}/hook",
            msg_id=f"m{i}",
            timestamp=int(time.time()),
            body=BODY,
            secret=receiver.secret,
        )
        assert outcome.kind == "delivered"
    assert receiver.connections_accepted == 1
    assert [r.headers["host"] for r in receiver.requests("/hook")] == [
        f"first.example.test:{receiver.port}",
        f"second.example.test:{receiver.port}",
    ]


def test_sender_refuses_transports_that_could_share_tls_connections() -> None:
    class Custom(httpx.AsyncBaseTransport):
        pass

    with pytest.raises(TypeError, match="default transport"):
        WebhookSender(httpx.AsyncClient(transport=Custom()), allow_private_targets=False)
    with pytest.raises(TypeError, match="default transport"):
        proxied = httpx.AsyncHTTPTransport(proxy="http://127.0.0.1:3128")
        WebhookSender(httpx.AsyncClient(transport=proxied), allow_private_targets=False)
