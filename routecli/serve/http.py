"""A small HTTP/1.1 server: asyncio streams plus httptools (llhttp, Node's parser) for requests.

The parsing that is easy to get wrong (chunked bodies, pipelining, keep-alive rules, malformed
input) is llhttp's, through the binding uvicorn uses; this module only moves bytes, enforces the
body limit and writes responses, whose framing routecli controls. h11 did the same in pure
Python at ~420 µs a request after 20 ms idle on the 2-CPU test machine, httptools ~110 µs
(benchmarks/serve_overhead.py measures the endpoint as a whole). An ASGI stack (uvicorn +
starlette) would add two dependencies and a layer per request for the three routes routecli serves.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import AsyncIterator, Awaitable, Callable

import httptools

from routecli import fastjson
from routecli.loops import Watch

READ_SIZE = 65_536
IDLE_TIMEOUT = 75.0  # seconds a keep-alive connection may wait for its next request
HEAD_LIMIT = 64 * 1024  # request line and headers


@dataclass
class HttpRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    query: str = ""  # the raw query string, without "?"
    keep_alive: bool = True  # the client may send another request on this connection


@dataclass
class HttpResponse:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    stream: AsyncIterator[bytes] | None = None  # chunked body (server-sent events), instead of body
    content_type: str = "application/json"


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


class TooLarge(Exception):
    pass


class _Requests:
    """httptools' callbacks: collects each whole request (several, if the client pipelines)."""

    def __init__(self, max_body: int, writer: asyncio.StreamWriter) -> None:
        self.max_body, self.writer = max_body, writer
        self.done: deque[HttpRequest] = deque()
        self.parser = httptools.HttpRequestParser(self)
        self.too_large = False
        self.broken = ""  # why the bytes that arrived are not HTTP/1.1 (or came after a request that closes)
        self.head_bytes = 0  # read since the current request began, until its headers are complete
        self._begin()

    def _begin(self) -> None:
        self._url, self._headers, self._body = b"", {}, bytearray()
        self._keep_alive, self._in_head = True, True

    def on_message_begin(self) -> None:
        self._begin()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._in_head, self.head_bytes = False, 0
        self._keep_alive = self.parser.should_keep_alive()
        declared = self._headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            self.too_large = True
        elif self._headers.get("expect", "").lower() == "100-continue":  # curl waits for this before a body
            self.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if len(self._body) + len(body) > self.max_body:
            self.too_large = True
        elif not self.too_large:
            self._body += body

    def on_message_complete(self) -> None:
        if self.too_large:
            return
        path, _, query = self._url.decode("latin-1").partition("?")
        method = self.parser.get_method().decode("ascii")
        self.done.append(HttpRequest(method, path, self._headers, bytes(self._body), query, self._keep_alive))
        self._in_head = True

    def feed(self, data: bytes) -> None:
        """Parse; raises TooLarge, or httptools.HttpParserError for input that is not HTTP/1.1."""
        if self._in_head:
            self.head_bytes += len(data)
        self.parser.feed_data(data)
        if self.too_large:
            raise TooLarge
        if self._in_head and self.head_bytes > HEAD_LIMIT:
            raise httptools.HttpParserError(f"request line and headers over {HEAD_LIMIT // 1024} KB; send shorter "
                                            "headers")


async def serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler: Handler,
                           max_body: int) -> None:
    requests = _Requests(max_body, writer)
    idle = Watch(writer.close)  # an idle connection is closed: the read waiting on it sees the end of the stream
    try:
        while (request := await _next_request(requests, reader, writer, idle)) is not None:
            await _send(writer, await handler(request), close=not request.keep_alive,
                        head_only=request.method == "HEAD")
            if not request.keep_alive:
                return
    except (ConnectionError, asyncio.TimeoutError):
        return
    finally:
        idle.cancel()
        writer.close()


async def _next_request(requests: _Requests, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter, idle: Watch) -> HttpRequest | None:
    """The next whole request; None once the client is gone (or idle too long) or has been sent an error."""
    while not requests.done:
        if requests.broken:
            await _send(writer, _error(400, f"malformed HTTP request ({requests.broken}); send an HTTP/1.1 request, "
                                            "as any OpenAI client does"), close=True)
            return None
        idle.begin(IDLE_TIMEOUT)  # the wait for the client's bytes is bounded, never the handler's time
        data = await reader.read(READ_SIZE)
        idle.end()
        if not data:
            return None
        try:
            requests.feed(data)
        except TooLarge:
            await _send(writer, _error(413, f"request body over {requests.max_body:,} bytes; send less, or raise "
                                            "serve.max_body_bytes"), close=True)
            return None
        except httptools.HttpParserError as exc:  # HttpParserUpgrade too: nothing here speaks another protocol
            requests.broken = str(exc) or type(exc).__name__  # the requests before the bad bytes are answered first
    return requests.done.popleft()


_REASONS = {status.value: status.phrase for status in HTTPStatus}


def _reason(status: int) -> str:
    return _REASONS.get(status, "")


def _head(response: HttpResponse, close: bool) -> bytes:
    lines = [f"HTTP/1.1 {response.status} {_reason(response.status)}", f"content-type: {response.content_type}",
             "server: routecli"]
    # a value with a line break would start a header (or a response) of the caller's choosing
    lines += [f"{name}: {value.replace(chr(13), ' ').replace(chr(10), ' ')}" for name, value in response.headers]
    if close:
        lines.append("connection: close")
    if response.stream is None:
        lines.append(f"content-length: {len(response.body)}")
    else:
        lines.append("transfer-encoding: chunked")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


async def _send(writer: asyncio.StreamWriter, response: HttpResponse, close: bool = False,
                head_only: bool = False) -> None:
    head = _head(response, close)
    if head_only:
        writer.write(head)
    elif response.stream is None:  # one write, so one send(): each costs a wake-up on the other side
        writer.write(head + response.body)
    else:
        writer.write(head)
        async for chunk in response.stream:
            if chunk:  # an empty chunk would end the body
                writer.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                await writer.drain()
        writer.write(b"0\r\n\r\n")
    await writer.drain()


def _error(status: int, message: str) -> HttpResponse:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": None}}
    return HttpResponse(status, fastjson.dumps(body))


async def start_server(handler: Handler, host: str, port: int, max_body: int) -> asyncio.base_events.Server:
    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_connection(reader, writer, handler, max_body)

    return await asyncio.start_server(on_connect, host, port, limit=READ_SIZE, backlog=1024)
