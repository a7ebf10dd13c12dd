"""A loopback webhook receiver: records every request, checks its signature, answers by script.

It speaks just enough HTTP/1.1 for httpx (keep-alive, Content-Length and chunked bodies) on
an asyncio server, so tests and benchmarks can push hundreds of requests per second through it.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections import defaultdict, deque
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from ssl import SSLContext, SSLError

from integrations.webhooks import SECRET_PREFIX, verify

MAX_BODY = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ScriptedResponse:
    """One scripted answer; ``delay_s`` holds it back to provoke client timeouts."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay_s: float = 0.0

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> ScriptedResponse:
        return cls(status=status, headers={"Location": location})


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """A request as the receiver saw it; header names are lower-cased."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes
    signature_valid: bool
    received_at: datetime


class _BadRequest(Exception):
    pass


def new_secret() -> str:
    """A fresh ``whsec_`` secret with a 24-byte key."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(24)).decode("ascii")


class WebhookReceiver:
    """HTTP server on 127.0.0.1 (free port) that receives webhooks.

    Use ``async with WebhookReceiver() as receiver`` or ``start()``/``stop()``. With
    ``ssl`` it serves HTTPS (tests of SNI and certificate checks bring their own context).
    """

    def __init__(
        self,
        secret: str | None = None,
        host: str = "127.0.0.1",
        ssl: SSLContext | None = None,
        port: int = 0,
    ) -> None:
        self.secret = secret or new_secret()
        self._host = host
        self._listen_port = port
        self._ssl = ssl
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._scripts: dict[str, deque[ScriptedResponse]] = defaultdict(deque)
        self._received: list[ReceivedRequest] = []
        # Per-path index, so waiting for the n-th request stays O(1) under benchmark load.
        self._by_path: dict[str, list[ReceivedRequest]] = defaultdict(list)
        self._changed: asyncio.Condition | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._stopping: asyncio.Event | None = None
        # TCP connections accepted so far; lets tests and benchmarks check keep-alive reuse.
        self.connections_accepted = 0

    async def __aenter__(self) -> WebhookReceiver:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self._changed = asyncio.Condition()
        self._stopping = asyncio.Event()
        self._server = await asyncio.start_server(
            self._serve, self._host, self._listen_port, ssl=self._ssl
        )
        self._port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        # Python 3.11's wait_closed does not end open keep-alive connections. Cancelling their
        # handler tasks makes start_server log a traceback per task, so end them instead:
        # wake delayed answers and drop the connections, and every handler returns on EOF.
        if self._stopping is not None:
            self._stopping.set()
        for writer in list(self._writers):
            writer.transport.abort()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("receiver is not started")
        return self._port

    def url(self, path: str = "/hook") -> str:
        scheme = "https" if self._ssl is not None else "http"
        return f"{scheme}://{self._host}:{self.port}{path}"

    def script(self, path: str, responses: list[ScriptedResponse]) -> None:
        """Answer the next requests to ``path`` with ``responses`` in order, then 200."""
        self._scripts[path] = deque(responses)

    def requests(self, path: str | None = None) -> list[ReceivedRequest]:
        return list(self._received if path is None else self._by_path.get(path, ()))

    def _count(self, path: str | None) -> int:
        return len(self._received if path is None else self._by_path.get(path, ()))

    async def wait_for_requests(
        self, path: str | None, n: int, timeout: float = 5.0
    ) -> list[ReceivedRequest]:
        """Wait until ``n`` requests to ``path`` (any path if None) have arrived."""
        if self._changed is None:
            raise RuntimeError("receiver is not started")
        changed = self._changed
        async with asyncio.timeout(timeout), changed:
            await changed.wait_for(lambda: self._count(path) >= n)
        return self.requests(path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_accepted += 1
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            while await self._serve_one(reader, writer):
                pass
        except (ConnectionError, SSLError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except _BadRequest:
            with suppress(ConnectionError):
                writer.write(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                await writer.drain()
        finally:
            if task is not None:
                self._handlers.discard(task)
            self._writers.discard(writer)
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; False when the connection should close."""
        request_line = await reader.readline()
        if not request_line:
            return False
        parts = request_line.decode("latin-1").split()
        if len(parts) != 3:
            raise _BadRequest
        method, target, version = parts
        headers = await self._read_headers(reader)
        body = await self._read_body(reader, headers)
        path, _, query = target.partition("?")

        request = ReceivedRequest(
            method=method,
            path=path,
            query=query,
            headers=headers,
            body=body,
            signature_valid=verify(self.secret, headers, body),
            received_at=datetime.now(UTC),
        )
        await self._record(request)

        script = self._scripts.get(path)
        response = script.popleft() if script else ScriptedResponse()
        if response.delay_s > 0 and self._stopping is not None:
            # Hold the answer back, but let stop() end the wait.
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), response.delay_s)
            if self._stopping.is_set():
                return False

        keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        writer.write(self._render(response, keep_alive))
        await writer.drain()
        return keep_alive

    async def _record(self, request: ReceivedRequest) -> None:
        self._received.append(request)
        self._by_path[request.path].append(request)
        if self._changed is not None:
            async with self._changed:
                self._changed.notify_all()

    @staticmethod
    async def _read_headers(reader: asyncio.StreamReader) -> dict[str, str]:
        headers: dict[str, str] = {}
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n"):
                return headers
            if not line:
                raise asyncio.IncompleteReadError(b"", None)
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep:
                raise _BadRequest
            key = name.strip().lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value

    @staticmethod
    async def _read_body(reader: asyncio.StreamReader, headers: Mapping[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size_line = await reader.readline()
                try:
                    size = int(size_line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise _BadRequest from None
                if size == 0:
                    # Trailers, if any, end with an empty line.
                    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
        length_text = headers.get("content-length", "0")
        if not length_text.isdigit() or int(length_text) > MAX_BODY:
            raise _BadRequest
        return await reader.readexactly(int(length_text))

    @staticmethod
    def _render(response: ScriptedResponse, keep_alive: bool) -> bytes:
        try:
            reason = HTTPStatus(response.status).phrase
        except ValueError:
            reason = "Unknown"
        lines = [f"HTTP/1.1 {response.status} {reason}"]
        lines += [f"{name}: {value}" for name, value in response.headers.items()]
        lines.append(f"Content-Length: {len(response.body)}")
        lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
        head = "\r\n".join(lines) + "\r\n\r\n"
        return head.encode("latin-1") + response.body


async def _serve_forever(port: int, secret: str) -> None:
    async with WebhookReceiver(secret=secret, port=port) as receiver:
        print(f"webhook receiver listening on {receiver.url('/hook')}", flush=True)
        seen = 0
        while True:
            received = await receiver.wait_for_requests(None, seen + 1, timeout=3600 * 24)
            for request in received[seen:]:
                status = "valid" if request.signature_valid else "INVALID"
                print(
                    f"received {request.method} {request.path} "
                    f"webhook-id={request.headers.get('webhook-id')} signature={status}",
                    flush=True,
                )
            seen = len(received)


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        description="Loopback webhook receiver (demo and manual tests)"
    )
    parser.add_argument("--port", type=int, default=8299)
    parser.add_argument("--secret", required=True, help="whsec_... secret to verify with")
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve_forever(args.port, args.secret))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
