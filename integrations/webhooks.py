"""Outbound webhooks, signed the Standard Webhooks way (providers.md section 8).

The sender resolves the target host itself, refuses non-public addresses, and then connects to
the very address it checked, so a DNS answer that changes between check and connect (DNS
rebinding) cannot reach an internal service.

Because the request URL names the checked IP, httpx pools its connections by (scheme, IP,
port). An HTTPS connection is certificate-checked once, for the host named at connect time
(SNI), so HTTPS requests go through one connection pool per host name: a connection verified
for one host is never reused for another host that resolves to the same address.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import sys
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

import httpcore
import httpx

from integrations.errors import parse_retry_after
from integrations.targets import TargetForbidden, read_capped, resolve_public_target

SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"
USER_AGENT = "BottleneckBots-Webhooks/1"
DEFAULT_TOLERANCE_S = 300
MAX_ERROR_CHARS = 200
# Enough to let a normal response finish (so the connection is reused) without buffering
# an arbitrarily large body from a hostile receiver.
MAX_BODY_READ = 64 * 1024
# HTTPS connection pools kept, one per target host name, least recently used closed first.
MAX_TLS_HOSTS = 64

OutcomeKind = Literal["delivered", "retry", "permanent"]


def signing_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret (the prefix is optional)."""
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("webhook secret must be whsec_ followed by base64") from None


def _signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``."""
    digest = _signature(signing_key(secret), msg_id, timestamp, body)
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """Check a received webhook: any listed ``v1`` signature matches and the timestamp is fresh."""
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get("webhook-id")
    raw_timestamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not msg_id or not raw_timestamp or not signatures:
        return False
    try:
        timestamp = int(raw_timestamp.strip())
    except ValueError:
        return False
    current = time.time() if now is None else now
    # Freshness bounds replay of a captured request, in both directions of clock skew.
    if abs(current - timestamp) > tolerance_s:
        return False
    try:
        expected = _signature(signing_key(secret), msg_id, timestamp, body)
    except ValueError:
        return False
    matched = False
    for entry in signatures.split():
        version, _, encoded = entry.partition(",")
        if version != SIGNATURE_VERSION:
            continue
        try:
            candidate = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        # No early exit: every listed signature costs the same, whichever one matches.
        matched |= hmac.compare_digest(candidate, expected)
    return matched


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What one delivery attempt came to; ``kind`` decides whether it is retried."""

    kind: OutcomeKind
    status_code: int | None
    error: str | None
    retry_after: float | None
    duration_ms: float


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


def _host_header(host: str, port: int, scheme: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    default = 443 if scheme == "https" else 80
    return shown if port == default else f"{shown}:{port}"


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def _read_some(response: httpx.Response) -> bytes:
    return await read_capped(response, MAX_BODY_READ)


def _classify(response: httpx.Response, body: bytes, elapsed_ms: float) -> DeliveryOutcome:
    status = response.status_code
    snippet = _short(body.decode("utf-8", errors="replace"))
    status_error = _short(f"HTTP {status}: {snippet}") if snippet else f"HTTP {status}"

    def outcome(
        kind: OutcomeKind, error: str | None, retry_after: float | None = None
    ) -> DeliveryOutcome:
        return DeliveryOutcome(kind, status, error, retry_after, elapsed_ms)

    # Svix convention: the receiver can stop all further retries of this message.
    if response.headers.get("webhook-delivery", "").strip().lower() == "abort-message":
        return outcome(
            "permanent", "receiver aborted the message (webhook-delivery: abort-message)"
        )
    if 200 <= status < 300:
        return outcome("delivered", None)
    if 300 <= status < 400:
        return outcome("permanent", f"redirects are not followed (HTTP {status})")
    if status in (408, 425, 429) or status >= 500:
        return outcome(
            "retry", status_error, parse_retry_after(response.headers.get("retry-after"))
        )
    return outcome("permanent", status_error)


TransportFactory = Callable[[], httpx.AsyncBaseTransport]


def _tls_transport_factory(client: httpx.AsyncClient) -> TransportFactory | None:
    """New transports with the TLS, pool and limit settings of ``client``'s own transport.

    None when the client's transport keeps no connections (``httpx.MockTransport``), so it
    can be shared by every host. httpx has no public accessor for these settings; they are
    read from its default transport, and any other transport is refused rather than
    silently sharing connections between hosts.
    """
    transport = client._transport
    if isinstance(transport, httpx.MockTransport):
        return None
    pool = transport._pool if isinstance(transport, httpx.AsyncHTTPTransport) else None
    # Proxy pools (subclasses) are refused too: the proxy would choose where to connect.
    if pool is None or type(pool) is not httpcore.AsyncConnectionPool:
        raise TypeError(
            "WebhookSender needs a client with httpx's default transport (or a MockTransport)"
        )
    max_connections = None if pool._max_connections == sys.maxsize else pool._max_connections
    max_keepalive = (
        None if pool._max_keepalive_connections == sys.maxsize else pool._max_keepalive_connections
    )
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_keepalive,
        keepalive_expiry=pool._keepalive_expiry,
    )
    verify = pool._ssl_context if pool._ssl_context is not None else True

    def new_transport() -> httpx.AsyncBaseTransport:
        return httpx.AsyncHTTPTransport(
            verify=verify,
            http1=pool._http1,
            http2=pool._http2,
            limits=limits,
            retries=pool._retries,
            local_address=pool._local_address,
            socket_options=pool._socket_options,
        )

    return new_transport


@dataclass(eq=False)
class _HostClient:
    client: httpx.AsyncClient
    in_use: int = 0
    evicted: bool = False


class WebhookSender:
    """Delivers one signed webhook request and classifies the answer.

    Plain HTTP goes through the injected client. HTTPS goes through a client per target host
    name, built with the injected client's TLS settings, timeout and limits and kept in a
    small LRU: the request URL names the pinned IP, so a shared pool would hand a connection
    whose certificate was checked for host A to a request for host B at the same address,
    and B's certificate would never be checked.

    Args:
        client: shared client, created by the owner with ``follow_redirects=False`` and a
            10 s timeout; this class never closes it.
        allow_private_targets: let targets resolve to private or loopback addresses
            (local development and tests only).
        max_tls_hosts: HTTPS host names whose connection pools are kept open.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        allow_private_targets: bool,
        *,
        max_tls_hosts: int = MAX_TLS_HOSTS,
    ) -> None:
        if max_tls_hosts < 1:
            raise ValueError("max_tls_hosts must be at least 1")
        self._client = client
        self._allow_private = allow_private_targets
        self._new_transport = _tls_transport_factory(client)
        self._max_tls_hosts = max_tls_hosts
        self._tls_clients: OrderedDict[str, _HostClient] = OrderedDict()

    async def aclose(self) -> None:
        """Close the per-host HTTPS connections (the injected client stays open)."""
        entries = list(self._tls_clients.values())
        self._tls_clients.clear()
        for entry in entries:
            entry.evicted = True
            await entry.client.aclose()

    @asynccontextmanager
    async def _client_for(self, scheme: str, host: str) -> AsyncIterator[httpx.AsyncClient]:
        if scheme != "https" or self._new_transport is None:
            # A plain-HTTP connection carries no identity: any host's request may reuse it.
            yield self._client
            return
        key = host.lower()
        entry = self._tls_clients.get(key)
        retired: list[_HostClient] = []
        if entry is None:
            entry = _HostClient(
                httpx.AsyncClient(
                    transport=self._new_transport(),
                    timeout=self._client.timeout,
                    follow_redirects=False,
                    # Proxies would connect wherever they like, defeating the pinned address.
                    trust_env=False,
                )
            )
            self._tls_clients[key] = entry
            while len(self._tls_clients) > self._max_tls_hosts:
                _, oldest = self._tls_clients.popitem(last=False)
                oldest.evicted = True
                if oldest.in_use == 0:
                    retired.append(oldest)
        else:
            self._tls_clients.move_to_end(key)
        entry.in_use += 1
        try:
            for old in retired:
                await old.client.aclose()
            yield entry.client
        finally:
            entry.in_use -= 1
            # An evicted pool still serving a request is closed by its last user.
            if entry.evicted and entry.in_use == 0:
                await entry.client.aclose()

    async def deliver(
        self, *, url: str, msg_id: str, timestamp: int, body: bytes, secret: str
    ) -> DeliveryOutcome:
        started = time.perf_counter()

        def elapsed() -> float:
            return (time.perf_counter() - started) * 1000.0

        def failed(kind: OutcomeKind, error: str) -> DeliveryOutcome:
            return DeliveryOutcome(kind, None, _short(error), None, elapsed())

        try:
            target = httpx.URL(url)
        except httpx.InvalidURL:
            return failed("permanent", "invalid target url")
        if target.scheme not in ("http", "https") or not target.host:
            return failed("permanent", "target url must be http or https")
        host = target.host
        port = target.port or (443 if target.scheme == "https" else 80)

        try:
            address = await resolve_public_target(host, port, self._allow_private)
        except TargetForbidden:
            return failed("permanent", "target address is not public")
        except OSError as exc:
            # DNS failures are often temporary; the retry schedule bounds the cost if not.
            return failed("retry", f"could not resolve target host: {exc.strerror or exc}")

        headers = {
            "host": _host_header(host, port, target.scheme),
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, msg_id, timestamp, body),
        }
        extensions: dict[str, str] = {}
        if target.scheme == "https" and not _is_ip_literal(host):
            # The socket goes to the pinned IP, but TLS must still name (and verify) the host.
            extensions["sni_hostname"] = host
        # Built by the injected client so its default headers and timeout apply everywhere.
        request = self._client.build_request(
            "POST",
            target.copy_with(host=address),
            headers=headers,
            content=body,
            extensions=extensions,
        )
        try:
            async with self._client_for(target.scheme, host) as client:
                response = await client.send(request, stream=True, follow_redirects=False)
                try:
                    received = await _read_some(response)
                finally:
                    await response.aclose()
        except httpx.TimeoutException as exc:
            return failed("retry", f"timeout: {type(exc).__name__}")
        except httpx.TransportError as exc:
            detail = str(exc) or type(exc).__name__
            return failed("retry", f"transport error: {type(exc).__name__}: {detail}")
        return _classify(response, received, elapsed())
