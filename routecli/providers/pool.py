"""An httpx transport for many concurrent requests to one provider: a free list of connections.

httpcore's own pool (httpcore 1.0) rescans every connection, and probes each idle socket,
for every queued request, several times per request: at 64 connections that cost ~5 ms of
CPU per request and capped a batch at ~130 requests/s against a local server. Here picking
a connection is a list pop; each connection is an `httpcore.AsyncHTTPConnection` (httpx's
own HTTP/1.1 machinery) on the plain-asyncio backend of netio.py, and httpcore's errors
become httpx's, so callers see exactly what an `httpx.AsyncClient` raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any, AsyncIterator, Iterator

import httpcore
import httpx

from routecli.providers.netio import AsyncioBackend

# httpcore error -> httpx error, most specific first (what httpx's own transport does).
_ERRORS: tuple[tuple[type[Exception], type[Exception]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout), (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout), (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException), (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError), (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError), (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError), (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol), (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextlib.contextmanager
def _as_httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for theirs, ours in _ERRORS:
            if isinstance(exc, theirs):
                raise ours(str(exc)) from exc
        raise


class _Body(httpx.AsyncByteStream):
    """A response body that gives its connection back to the pool once it is closed."""

    def __init__(self, inner: httpcore.AsyncByteStream, pool: SlotPool, connection: httpcore.AsyncHTTPConnection):
        self._inner, self._pool, self._connection = inner, pool, connection

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors():
            async for chunk in self._inner:  # type: ignore[attr-defined]
                yield chunk

    async def aclose(self) -> None:
        try:
            with _as_httpx_errors():
                await self._inner.aclose()  # type: ignore[attr-defined]
        finally:
            await self._pool.give_back(self._connection)


class SlotPool(httpx.AsyncBaseTransport):
    """At most `size` connections; a request waits (up to the pool timeout) for a free one."""

    def __init__(self, size: int, *, keepalive_expiry: float = 5.0, ssl_context: ssl.SSLContext | None = None) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one connection")
        self._free: list[httpcore.AsyncHTTPConnection] = []
        self._slots = asyncio.Semaphore(size)
        self._backend = AsyncioBackend()
        self._keepalive = keepalive_expiry
        # One for all connections: building one loads the CA bundle (~18 ms).
        self._ssl = ssl_context or httpx.create_ssl_context()
        self.opened = 0  # connections opened so far

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self._take_slot(request)
        url = request.url
        core = httpcore.Request(
            method=request.method, headers=request.headers.raw, content=request.stream,  # type: ignore[arg-type]
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            extensions=request.extensions,
        )
        connection = self._reuse(core.url.origin) or self._open(core.url.origin)
        try:
            with _as_httpx_errors():
                response = await connection.handle_async_request(core)
        except BaseException:
            await self.give_back(connection)
            raise
        return httpx.Response(response.status, headers=response.headers, extensions=response.extensions,
                              stream=_Body(response.stream, self, connection))

    async def _take_slot(self, request: httpx.Request) -> None:
        if not self._slots.locked():  # the usual case: no timer needed
            await self._slots.acquire()
            return
        timeout = (request.extensions.get("timeout") or {}).get("pool")
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout)
        except asyncio.TimeoutError:
            raise httpx.PoolTimeout("no free connection within the pool timeout", request=request) from None

    def _reuse(self, origin: httpcore.Origin) -> httpcore.AsyncHTTPConnection | None:
        while self._free:
            connection = self._free.pop()  # last in, first out: the warmest connection
            if connection.can_handle_request(origin) and connection.is_idle() and not connection.has_expired():
                return connection
            asyncio.ensure_future(connection.aclose())  # expired or hung up: drop it
        return None

    def _open(self, origin: httpcore.Origin) -> httpcore.AsyncHTTPConnection:
        self.opened += 1
        return httpcore.AsyncHTTPConnection(origin, ssl_context=self._ssl, keepalive_expiry=self._keepalive,
                                            network_backend=self._backend)

    async def give_back(self, connection: httpcore.AsyncHTTPConnection) -> None:
        try:
            if connection.is_idle():
                self._free.append(connection)
            else:
                await connection.aclose()
        finally:
            self._slots.release()

    async def aclose(self) -> None:
        while self._free:
            await self._free.pop().aclose()


class PooledClient(httpx.AsyncClient):
    """An `httpx.AsyncClient` that hands each request straight to its SlotPool: no cookie jar,
    auth flow or redirect loop in between.

    Provider APIs use none of them, and in `serve` one client carries every member's requests: a
    cookie the upstream set for one must not ride along on another's. Skipping them also skips
    their work on every request of a batch or of serve (keyword arguments for them are ignored)."""

    def __init__(self, pool: SlotPool, **kwargs: Any) -> None:
        super().__init__(transport=pool, **kwargs)
        self.pool = pool

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
