"""One kept-alive HTTP/1.1 connection for the async providers: h11's state machine on asyncio streams.

Through httpx + httpcore a provider call crossed httpx's request and response models,
httpcore's connection, its locks and trace hooks, then h11: ~430 µs of CPU per call warm on
the 2-CPU test machine and ~1.4 ms after 20 ms idle, when little of that code is still in
the CPU's caches (benchmarks/serve_overhead.py). A provider call needs one origin, a JSON
body and keep-alive; h11 (httpx's own HTTP/1.1 engine) still does all of the framing here, and
failures are raised as httpx's exception types so every caller's handling stays as it was.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import AsyncIterator

import h11
import httpx

READ_SIZE = 65_536
HEAD_LIMIT = 100 * 1024  # a response head larger than this is refused, as httpcore does
Headers = list[tuple[bytes, bytes]]


class Connection:
    """One connection to one origin, one request at a time."""

    def __init__(self, origin: tuple[str, str, int], reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 keepalive: float) -> None:
        self.origin = origin  # scheme, host, port
        self._reader, self._writer = reader, writer
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=HEAD_LIMIT)
        self._keepalive = keepalive
        self._idle_since = time.monotonic()

    @classmethod
    async def open(cls, scheme: str, host: str, port: int, *, ssl_context: ssl.SSLContext | None,
                   timeout: float | None, keepalive: float) -> Connection:
        tls = ssl_context if scheme == "https" else None
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(host, port, ssl=tls, limit=READ_SIZE,
                                                               server_hostname=host if tls else None)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"no connection to {host}:{port} within {timeout} s") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from None
        return cls((scheme, host, port), reader, writer, keepalive)

    def reusable(self) -> bool:
        """Between requests, not idle for longer than keep-alive allows, and not hung up on."""
        return (self._h11.our_state is h11.IDLE and self._h11.their_state is h11.IDLE
                and not self._reader.at_eof() and not self._writer.is_closing()
                and time.monotonic() - self._idle_since < self._keepalive)

    async def send(self, method: bytes, target: bytes, headers: Headers, body: bytes, *,
                   write_timeout: float | None, read_timeout: float | None) -> tuple[int, Headers]:
        """Send a whole request and read the response's status and headers (names lower-case)."""
        conn = self._h11
        try:  # one write, so one send(): the server wakes once, not for the head and again for the body
            data = conn.send(h11.Request(method=method, target=target, headers=headers))
            data += conn.send(h11.Data(data=body)) if body else b""
            data += conn.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:
            raise httpx.LocalProtocolError(str(exc)) from None
        self._writer.write(data)
        try:
            async with asyncio.timeout(write_timeout):
                await self._writer.drain()
        except TimeoutError:
            raise httpx.WriteTimeout(f"could not send within {write_timeout} s") from None
        except OSError as exc:
            raise httpx.WriteError(str(exc) or type(exc).__name__) from None
        event = await self._next(read_timeout)
        if not isinstance(event, h11.Response):
            raise httpx.RemoteProtocolError(f"expected the response's head, got {type(event).__name__}")
        return event.status_code, list(event.headers)

    async def body(self, read_timeout: float | None) -> AsyncIterator[bytes]:
        """The response body as it arrives; each wait for bytes may last read_timeout."""
        while True:
            event = await self._next(read_timeout)
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                raise httpx.RemoteProtocolError(f"expected the response's body, got {type(event).__name__}")
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            self._h11.start_next_cycle()  # otherwise MUST_CLOSE stays, and reusable() says no
            self._idle_since = time.monotonic()

    async def read_body(self, read_timeout: float | None) -> bytes:
        return b"".join([chunk async for chunk in self.body(read_timeout)])

    async def finish(self, timeout: float, limit: int) -> None:
        """Read the rest of a body its reader stopped short of (a stream read up to its end
        marker, before the closing chunk), so the connection can be used again; a body that
        does not end within `limit` bytes and `timeout` seconds is left, and reusable() says no."""
        if self._h11.their_state is not h11.SEND_BODY:
            return
        read = 0
        try:
            async with asyncio.timeout(timeout):
                async for chunk in self.body(None):
                    read += len(chunk)
                    if read > limit:
                        return
        except (TimeoutError, httpx.HTTPError):
            return

    def close(self) -> None:
        self._writer.close()  # no wait for the peer: a connection being dropped owes it nothing

    async def _next(self, timeout: float | None) -> object:
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(str(exc)) from None
            if event is h11.NEED_DATA:
                self._h11.receive_data(await self._read(timeout))
            elif not isinstance(event, h11.InformationalResponse):  # a 100 Continue precedes the answer
                return event

    async def _read(self, timeout: float | None) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                data = await self._reader.read(READ_SIZE)
        except TimeoutError:
            raise httpx.ReadTimeout(f"no data within {timeout} s") from None
        except OSError as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__) from None
        if not data and self._h11.their_state is h11.SEND_RESPONSE:
            raise httpx.RemoteProtocolError("the server closed the connection without answering")
        return data
