"""A do-nothing relay for benchmarks/serve_overhead.py: what any Python HTTP relay adds on this machine.

    python benchmarks/minimal_relay.py UPSTREAM_ROOT [auto|uvloop|asyncio]   (the key: OPENAI_API_KEY)

asyncio streams and httptools (llhttp) on both sides, as routecli serve uses, on the event loop
serve picks for the same --loop (uvloop when installed): it reads an OpenAI chat request, sets
the model, forwards it over a kept-alive connection and sends the answer back. No routing, no
guards, no ledger, no error handling beyond what a benchmark needs. serve's overhead minus this
one's, measured in the same run, is what routecli's own work costs per request.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httptools
from lean_http import whole  # this script's folder is on sys.path

UPSTREAM = urlsplit(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:1")
free: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []


async def upstream(body: bytes) -> tuple[int, bytes]:
    reader, writer = free.pop() if free else await asyncio.open_connection(UPSTREAM.hostname, UPSTREAM.port)
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nhost: {UPSTREAM.netloc}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nauthorization: Bearer {os.environ.get('OPENAI_API_KEY', '')}\r\n\r\n")
    writer.write(head.encode() + body)
    response = await whole(reader, httptools.HttpResponseParser)
    assert response is not None
    free.append((reader, writer))
    return response.status, bytes(response.body)


async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while (request := await whole(reader, httptools.HttpRequestParser)) is not None:
        payload = json.loads(request.body)
        payload["model"] = "gpt-5.4-nano"
        status, answer = await upstream(json.dumps(payload).encode())
        writer.write(b"HTTP/1.1 %d OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%b"
                     % (status, len(answer), answer))
        await writer.drain()
    writer.close()


async def main() -> None:
    server = await asyncio.start_server(on_connect, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    loop = "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"
    sys.stderr.write(f"minimal relay: listening on http://127.0.0.1:{port} ({loop} event loop)\n")
    sys.stderr.flush()
    await asyncio.Event().wait()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from routecli.loops import event_loop  # the same choice serve makes: the floor is measured on it

    with asyncio.Runner(loop_factory=event_loop(sys.argv[2] if len(sys.argv) > 2 else "auto")[0]) as runner:
        runner.run(main())
