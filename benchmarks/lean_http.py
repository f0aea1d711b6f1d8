"""Lean HTTP/1.1 for the serve benchmarks: a whole-message reader and a kept-alive JSON POST client.

httptools (llhttp, which routecli serve parses with too) on asyncio streams, nothing else: no
pool, no redirects, no cookies, no header objects. The load generator of serve_overhead.py uses
it so that the program measuring serve does not take the CPU serve needs: on the 2-CPU test VM
httpx spent 1.7-2.8 ms of CPU a request at 64 clients, more than serve itself (1.5-1.8 ms), and
where all the processes share the cores that contention was in serve's figure. Load generators
are lean for this reason (wrk, h2load); a client's own cost is no part of what the endpoint adds.
It is not routecli's own providers/h1.py: the instrument stays apart from the code it measures.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import httptools


class Message:
    """httptools callbacks: one whole request or response."""

    def __init__(self) -> None:
        self.body, self.done, self.status = bytearray(), False, 0

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.done = True


async def whole(reader: asyncio.StreamReader, parser_type: type) -> Message | None:
    """The next whole message on the stream (Content-Length or chunked), None if it closed first."""
    message = Message()
    parser = parser_type(message)
    while not message.done:
        data = await reader.read(65_536)
        if not data:
            return None
        parser.feed_data(data)
    if parser_type is httptools.HttpResponseParser:
        message.status = parser.get_status_code()
    return message


class Connection:
    """One kept-alive connection that POSTs JSON bodies to one URL, one request at a time."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        lines = [f"POST {parts.path} HTTP/1.1", f"host: {parts.netloc}", "content-type: application/json",
                 *(f"{name}: {value}" for name, value in headers.items())]
        self.head = ("\r\n".join(lines) + "\r\ncontent-length: ").encode()
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, body: bytes) -> bytes:
        """The answer's body; an error for any status but 200, or a connection closed mid-answer."""
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        writer.write(self.head + b"%d\r\n\r\n" % len(body) + body)
        answer = await whole(reader, httptools.HttpResponseParser)
        if answer is None:
            self.close()
            raise ConnectionError(f"{self.host}:{self.port} closed the connection before answering")
        if answer.status != 200:
            raise RuntimeError(f"HTTP {answer.status} from {self.host}:{self.port}: {bytes(answer.body[:300])!r}")
        return bytes(answer.body)

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None
