"""A small HTTP/1.1 server: asyncio streams plus h11 for the protocol.

h11 (already installed as httpx's HTTP/1.1 engine) does the parsing and framing that is easy to
get wrong; this module only moves bytes, enforces the body limit and keeps connections alive.
An ASGI stack (uvicorn + starlette) would add two dependencies and a layer per request for the
three routes routecli serves.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import AsyncIterator, Awaitable, Callable

import h11

READ_SIZE = 65_536
IDLE_TIMEOUT = 75.0  # seconds a keep-alive connection may wait for its next request


@dataclass
class HttpRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    query: str = ""  # the raw query string, without "?"


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


async def serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler: Handler,
                           max_body: int) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
    try:
        while True:
            try:
                request = await _read_request(conn, reader, max_body)
            except TooLarge:
                await _send(conn, writer, _error(413, f"request body over {max_body:,} bytes; send less, or raise "
                                                      "serve.max_body_bytes"), close=True)
                return
            except h11.RemoteProtocolError:
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await _send(conn, writer, _error(400, "malformed HTTP request"), close=True)
                return
            if request is None:
                return
            await _send(conn, writer, await handler(request))
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
    except (ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError):
        return
    finally:
        writer.close()


async def _next_event(conn: h11.Connection, reader: asyncio.StreamReader) -> object:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        async with asyncio.timeout(IDLE_TIMEOUT):  # not wait_for: that starts a task per read
            data = await reader.read(READ_SIZE)
        conn.receive_data(data)


async def _read_request(conn: h11.Connection, reader: asyncio.StreamReader, max_body: int) -> HttpRequest | None:
    event = await _next_event(conn, reader)
    if isinstance(event, h11.ConnectionClosed) or not isinstance(event, h11.Request):
        return None
    headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in event.headers}
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_body:
        raise TooLarge
    body = bytearray()
    while True:
        part = await _next_event(conn, reader)
        if isinstance(part, h11.Data):
            body += part.data
            if len(body) > max_body:
                raise TooLarge
        elif isinstance(part, h11.EndOfMessage):
            break
        elif isinstance(part, h11.ConnectionClosed):
            return None
    path, _, query = event.target.decode("latin-1").partition("?")
    return HttpRequest(event.method.decode("ascii"), path, headers, bytes(body), query)


async def _send(conn: h11.Connection, writer: asyncio.StreamWriter, response: HttpResponse,
                close: bool = False) -> None:
    headers = [("content-type", response.content_type), ("server", "routecli"), *response.headers]
    if close:
        headers.append(("connection", "close"))
    if response.stream is None:
        headers.append(("content-length", str(len(response.body))))
    head = conn.send(h11.Response(status_code=response.status, headers=headers))
    if response.stream is None:  # one write, so one send(): each costs a wake-up on the other side
        writer.write(head + conn.send(h11.Data(data=response.body)) + conn.send(h11.EndOfMessage()))
    else:
        writer.write(head)
        async for chunk in response.stream:
            writer.write(conn.send(h11.Data(data=chunk)))
            await writer.drain()
        writer.write(conn.send(h11.EndOfMessage()))
    await writer.drain()


def _error(status: int, message: str) -> HttpResponse:
    import json

    body = {"error": {"message": message, "type": "invalid_request_error", "code": None}}
    return HttpResponse(status, json.dumps(body).encode())


async def start_server(handler: Handler, host: str, port: int, max_body: int) -> asyncio.base_events.Server:
    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_connection(reader, writer, handler, max_body)

    return await asyncio.start_server(on_connect, host, port, limit=READ_SIZE, backlog=1024)
