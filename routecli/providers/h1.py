"""One kept-alive HTTP/1.1 connection for the async providers: httptools (llhttp) on asyncio streams.

Through httpx + httpcore a provider call crossed httpx's request and response models,
httpcore's connection, its locks and trace hooks, then h11: ~430 µs of CPU per call warm on
the 2-CPU test machine and ~1.4 ms after 20 ms idle, when little of that code is still in
the CPU's caches (benchmarks/serve_overhead.py). A provider call needs one origin, a JSON
body and keep-alive. llhttp (Node's parser, which uvicorn uses through the same binding) reads
the responses: chunked bodies, interim 100s, keep-alive rules; the request is a head this
module writes. h11 did both in pure Python for ~4x the time. Failures are raised as httpx's
exception types so every caller's handling stays as it was.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import AsyncIterator

import httptools
import httpx

from routecli.loops import Watch

READ_SIZE = 65_536
HEAD_LIMIT = 100 * 1024  # a response head larger than this is refused, as httpcore does
Headers = list[tuple[bytes, bytes]]


class _Response:
    """httptools' callbacks for the response being read (interim 1xx responses are skipped)."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.reset()

    def reset(self) -> None:
        self.status, self.headers, self.chunks = 0, [], []
        self.head_done = self.complete = False
        self.keep_alive, self.framed = True, True
        self.head_bytes = 0

    def on_message_begin(self) -> None:
        self.headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:  # 100 Continue and the like: the answer follows
            return
        self.status, self.head_done = status, True
        self.keep_alive = self.parser.should_keep_alive()
        names = {name for name, _ in self.headers}
        # without either, the body ends when the server closes the connection
        self.framed = b"content-length" in names or b"transfer-encoding" in names or status in (204, 304)

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        if self.head_done:
            self.complete = True

    def feed(self, data: bytes) -> None:
        if not self.head_done:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            raise httpx.RemoteProtocolError(f"the server's answer is not HTTP/1.1 ({exc})") from None
        if not self.head_done and self.head_bytes > HEAD_LIMIT:
            raise httpx.RemoteProtocolError(f"the response head is over {HEAD_LIMIT:,} bytes")


class Connection:
    """One connection to one origin, one request at a time."""

    def __init__(self, origin: tuple[str, str, int], reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 keepalive: float) -> None:
        self.origin = origin  # scheme, host, port
        self._reader, self._writer = reader, writer
        self._response = _Response()
        self._busy = False  # a request is out and its response not read to the end
        self._keepalive = keepalive
        self._idle_since = time.monotonic()
        self._reads = Watch(self._read_timed_out)  # each read's timeout
        self._timed_out = False

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
        return (not self._busy and self._response.keep_alive
                and not self._reader.at_eof() and not self._writer.is_closing()
                and time.monotonic() - self._idle_since < self._keepalive)

    async def send(self, method: bytes, target: bytes, headers: Headers, body: bytes, *,
                   write_timeout: float | None, read_timeout: float | None) -> tuple[int, Headers]:
        """Send a whole request and read the response's status and headers (names lower-case)."""
        if self._busy:
            raise httpx.LocalProtocolError("the previous response on this connection was not read")
        self._busy = True
        self._response.reset()
        # one write, so one send(): the server wakes once, not for the head and again for the body
        self._writer.write(_request_head(method, target, headers) + body)
        try:
            if self._writer.transport.get_write_buffer_size():  # usually sent at once: no timer to arm
                async with asyncio.timeout(write_timeout):
                    await self._writer.drain()
            else:
                await self._writer.drain()  # still raises if the connection was lost
        except TimeoutError:
            raise httpx.WriteTimeout(f"could not send within {write_timeout} s") from None
        except OSError as exc:
            raise httpx.WriteError(str(exc) or type(exc).__name__) from None
        response = self._response
        while not response.head_done:
            await self._receive(read_timeout)
        return response.status, response.headers

    async def body(self, read_timeout: float | None) -> AsyncIterator[bytes]:
        """The response body as it arrives; each wait for bytes may last read_timeout."""
        response = self._response
        while True:
            while response.chunks:
                yield bytes(response.chunks.pop(0))
            if response.complete:
                break
            await self._receive(read_timeout)
        self._busy = False
        self._idle_since = time.monotonic()

    async def read_body(self, read_timeout: float | None) -> bytes:
        return b"".join([chunk async for chunk in self.body(read_timeout)])

    async def finish(self, timeout: float, limit: int) -> None:
        """Read the rest of a body its reader stopped short of (a stream read up to its end
        marker, before the closing chunk), so the connection can be used again; a body that
        does not end within `limit` bytes and `timeout` seconds is left, and reusable() says no."""
        if not self._busy or not self._response.head_done:
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
        self._reads.cancel()
        self._writer.close()  # no wait for the peer: a connection being dropped owes it nothing

    async def _receive(self, timeout: float | None) -> None:
        """Read once and parse; the end of the connection ends an unframed body, and is an error otherwise."""
        if timeout is not None:
            self._reads.begin(timeout)
        try:
            data = await self._reader.read(READ_SIZE)
        except OSError as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__) from None
        finally:
            self._reads.end()
        if self._timed_out:
            raise httpx.ReadTimeout(f"no data within {timeout} s")
        response = self._response
        if data:
            response.feed(data)
        elif not response.head_done:
            raise httpx.RemoteProtocolError("the server closed the connection without answering")
        elif response.framed:
            raise httpx.RemoteProtocolError("the server closed the connection before the end of the body")
        else:
            response.complete, response.keep_alive = True, False

    def _read_timed_out(self) -> None:
        self._timed_out = True
        self._writer.transport.abort()  # the read waiting on it ends; _receive raises ReadTimeout


def _request_head(method: bytes, target: bytes, headers: Headers) -> bytes:
    lines = [b"%s %s HTTP/1.1" % (method, target)]
    for name, value in headers:
        if b"\r" in value or b"\n" in value or b"\r" in name or b"\n" in name or b":" in name:
            raise httpx.LocalProtocolError(f"header {name!r} has a line break in its name or value, or a colon in "
                                           "its name: check its configuration (extra headers, API key)")
        lines.append(name + b": " + value)
    return b"\r\n".join(lines) + b"\r\n\r\n"
