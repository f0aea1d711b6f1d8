"""A do-nothing relay for benchmarks/serve_overhead.py: what any Python HTTP relay adds on this machine.

    python benchmarks/minimal_relay.py UPSTREAM_ROOT   (the upstream key comes from OPENAI_API_KEY)

asyncio streams and h11 on both sides, as routecli serve uses: it reads an OpenAI chat request,
sets the model, forwards it over a kept-alive connection and sends the answer back. No routing,
no guards, no ledger, no error handling beyond what a benchmark needs. serve's overhead minus
this one's, measured in the same run, is what routecli's own work costs per request.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from urllib.parse import urlsplit

import h11

UPSTREAM = urlsplit(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:1")
free: list[tuple[h11.Connection, asyncio.StreamReader, asyncio.StreamWriter]] = []


async def next_event(conn: h11.Connection, reader: asyncio.StreamReader) -> object:
    while (event := conn.next_event()) is h11.NEED_DATA:
        conn.receive_data(await reader.read(65_536))
    return event


async def whole_message(conn: h11.Connection, reader: asyncio.StreamReader) -> tuple[object, bytes]:
    head, body = await next_event(conn, reader), b""
    if isinstance(head, h11.ConnectionClosed):
        return head, body
    while isinstance(event := await next_event(conn, reader), h11.Data):
        body += event.data
    return head, body


async def upstream(body: bytes) -> tuple[int, bytes]:
    if free:
        conn, reader, writer = free.pop()
    else:
        reader, writer = await asyncio.open_connection(UPSTREAM.hostname, UPSTREAM.port)
        conn = h11.Connection(h11.CLIENT)
    headers = [("host", UPSTREAM.netloc), ("content-type", "application/json"), ("content-length", str(len(body))),
               ("authorization", "Bearer " + os.environ.get("OPENAI_API_KEY", ""))]
    writer.write(conn.send(h11.Request(method="POST", target="/v1/chat/completions", headers=headers))
                 + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
    response, answer = await whole_message(conn, reader)
    conn.start_next_cycle()
    free.append((conn, reader, writer))
    return response.status_code, answer  # type: ignore[attr-defined]


async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    conn = h11.Connection(h11.SERVER)
    while True:
        request, body = await whole_message(conn, reader)
        if isinstance(request, h11.ConnectionClosed):
            writer.close()
            return
        payload = json.loads(body)
        payload["model"] = "gpt-5.4-nano"
        status, answer = await upstream(json.dumps(payload).encode())
        headers = [("content-type", "application/json"), ("content-length", str(len(answer)))]
        writer.write(conn.send(h11.Response(status_code=status, headers=headers)) + conn.send(h11.Data(data=answer))
                     + conn.send(h11.EndOfMessage()))
        await writer.drain()
        conn.start_next_cycle()


async def main() -> None:
    server = await asyncio.start_server(on_connect, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    sys.stderr.write(f"minimal relay: listening on http://127.0.0.1:{port}\n")
    sys.stderr.flush()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
