"""An httpx transport for many concurrent requests to one provider: a free list of connections.

httpcore's own pool (httpcore 1.0) rescans every connection, and probes each idle socket,
for every queued request, several times per request: at 64 connections that cost ~5 ms of
CPU per request and capped a batch at ~130 requests/s against a local server. Here picking
a connection is a list pop; each connection is an `h1.Connection` (httptools on asyncio streams),
whose failures are httpx's exceptions, so callers see exactly what an `httpx.AsyncClient` raises.

`exchange()` is the path of every non-streaming provider call: bytes in, status, headers and
body out, with no httpx request or response object built. Streams go through httpx (the
transport interface) so httpx-sse reads them as before.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from dataclasses import dataclass
from typing import Any, AsyncIterator, Mapping
from urllib.parse import urlsplit

import httpx

from routecli.providers.h1 import Connection, Headers

Origin = tuple[str, str, int]  # scheme, host, port
FINISH_SECONDS, FINISH_BYTES = 0.1, 65_536  # how much of a stream's tail is read to keep its connection


@dataclass(frozen=True, slots=True)
class Answer:
    """A whole response: what a non-streaming provider call needs of it."""

    status: int
    headers: dict[str, str]  # lower-case names
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


@functools.lru_cache(maxsize=256)
def _split(url: str) -> tuple[Origin, bytes, bytes]:
    """(origin, request target, Host header) of an absolute URL; a provider sends to a handful."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise httpx.UnsupportedProtocol(f"not an http(s) URL: {url}")
    port = parts.port or _default_port(parts.scheme)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return (parts.scheme, parts.hostname, port), target.encode(), parts.netloc.encode()


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


class _Body(httpx.AsyncByteStream):
    """A streamed response body that gives its connection back to the pool once it is closed."""

    def __init__(self, connection: Connection, pool: SlotPool, read_timeout: float | None) -> None:
        self._connection, self._pool, self._read_timeout = connection, pool, read_timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._connection.body(self._read_timeout):
            yield chunk

    async def aclose(self) -> None:
        # A streaming reader stops at the end marker ([DONE], message_stop), usually a few bytes
        # before the body's end; reading those keeps the connection: without it each streamed call
        # opened a new one (a TCP and TLS handshake to a remote provider). A body still running
        # (the reader gave up mid-stream) is closed rather than reused.
        try:
            await self._connection.finish(FINISH_SECONDS, FINISH_BYTES)
        finally:  # cancelled meanwhile, the slot is still freed
            self._pool.give_back(self._connection)


class SlotPool(httpx.AsyncBaseTransport):
    """At most `size` connections; a request waits (up to the pool timeout) for a free one."""

    def __init__(self, size: int, *, keepalive_expiry: float = 5.0, ssl_context: ssl.SSLContext | None = None) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one connection")
        self._free: list[Connection] = []
        self._slots = asyncio.Semaphore(size)
        self._keepalive = keepalive_expiry
        # One for all connections: building one loads the CA bundle (~18 ms).
        self._ssl = ssl_context or httpx.create_ssl_context()
        self.opened = 0  # connections opened so far

    async def exchange(self, method: str, url: str, headers: Headers, body: bytes,
                       timeout: httpx.Timeout) -> Answer:
        """One request and its whole answer; headers are sent as given, after Host."""
        origin, target, host = _split(url)
        await self._take_slot(timeout.pool)
        connection = None
        try:
            connection = self._reuse(origin) or await self._open(origin, timeout.connect)
            sent = [(b"host", host), *headers, (b"content-length", str(len(body)).encode())]
            status, head = await connection.send(method.encode(), target, sent, body,
                                                 write_timeout=timeout.write, read_timeout=timeout.read)
            content = await connection.read_body(timeout.read)
        finally:
            self.give_back(connection)
        return Answer(status, {name.decode("latin-1"): value.decode("latin-1") for name, value in head}, content)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout") or {}
        url = request.url
        origin = (url.scheme, url.host, url.port or _default_port(url.scheme))
        await self._take_slot(timeout.get("pool"))
        connection = None
        try:
            connection = self._reuse(origin) or await self._open(origin, timeout.get("connect"))
            status, head = await connection.send(request.method.encode(), url.raw_path, request.headers.raw,
                                                 await request.aread(), write_timeout=timeout.get("write"),
                                                 read_timeout=timeout.get("read"))
        except BaseException:
            self.give_back(connection)
            raise
        return httpx.Response(status, headers=head, stream=_Body(connection, self, timeout.get("read")))

    async def _take_slot(self, timeout: float | None) -> None:
        if not self._slots.locked():  # the usual case: no timer needed
            await self._slots.acquire()
            return
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout)
        except asyncio.TimeoutError:
            raise httpx.PoolTimeout("no free connection within the pool timeout") from None

    def _reuse(self, origin: Origin) -> Connection | None:
        while self._free:
            connection = self._free.pop()  # last in, first out: the warmest connection
            if connection.origin == origin and connection.reusable():
                return connection
            connection.close()  # expired, hung up, or for another origin
        return None

    async def _open(self, origin: Origin, timeout: float | None) -> Connection:
        scheme, host, port = origin
        connection = await Connection.open(scheme, host, port, ssl_context=self._ssl, timeout=timeout,
                                           keepalive=self._keepalive)
        self.opened += 1
        return connection

    def give_back(self, connection: Connection | None) -> None:
        """Free the slot; keep the connection if it is ready for another request, else close it."""
        try:
            if connection is not None and connection.reusable():
                self._free.append(connection)
            elif connection is not None:
                connection.close()
        finally:
            self._slots.release()

    async def aclose(self) -> None:
        while self._free:
            self._free.pop().close()


class PooledClient(httpx.AsyncClient):
    """An `httpx.AsyncClient` that hands each request straight to its SlotPool: no cookie jar,
    auth flow or redirect loop in between.

    Provider APIs use none of them, and in `serve` one client carries every member's requests: a
    cookie the upstream set for one must not ride along on another's. Skipping them also skips
    their work on every request of a batch or of serve (keyword arguments for them are ignored)."""

    def __init__(self, pool: SlotPool, **kwargs: Any) -> None:
        super().__init__(transport=pool, **kwargs)
        self.pool = pool
        self._sent_always = [(b"user-agent", self.headers["user-agent"].encode())]

    async def exchange(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> Answer:
        """A non-streaming call with this client's user agent and timeouts, its answer read whole."""
        if self.is_closed:
            raise RuntimeError("cannot send a request: the client has been closed")
        sent = self._sent_always + [(name.encode(), value.encode()) for name, value in headers.items()]
        return await self.pool.exchange(method, url, sent, body, self.timeout)

    async def send(self, request: httpx.Request, *, stream: bool = False, **_: Any) -> httpx.Response:
        if self.is_closed:
            raise RuntimeError("cannot send a request: the client has been closed")
        response = await self.pool.handle_async_request(request)
        response.request = request
        if not stream:
            try:
                await response.aread()
            finally:
                await response.aclose()
        return response
