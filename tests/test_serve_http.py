"""routecli serve's HTTP/1.1 layer (serve/http.py) over raw sockets: keep-alive, pipelining,
chunked request bodies, 100 Continue, HTTP/1.0, limits, malformed input, header injection."""

from __future__ import annotations

import asyncio
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from routecli.serve.http import HttpRequest, HttpResponse, start_server


async def echo(request: HttpRequest) -> HttpResponse:
    if request.path == "/stream":
        async def chunks():
            for part in (b"data: 1\n\n", b"", b"data: 2\n\n"):
                yield part
        return HttpResponse(200, stream=chunks(), content_type="text/event-stream")
    if request.path == "/inject":
        return HttpResponse(200, b"{}", headers=[("x-model", "a\r\nset-cookie: evil=1")])
    body = {"method": request.method, "path": request.path, "query": request.query,
            "body": request.body.decode(), "host": request.headers.get("host")}
    return HttpResponse(200, json.dumps(body).encode())


def exchange(*chunks: bytes, max_body: int = 1000, pause: float = 0.05) -> bytes:
    """Send each chunk (pausing between), half-close, and return everything the server sent."""
    async def main() -> bytes:
        server = await start_server(echo, "127.0.0.1", 0, max_body)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(pause)
        writer.write_eof()
        data = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        server.close()
        return data

    return asyncio.run(main())


def post(path: bytes, body: bytes, *extra: bytes) -> bytes:
    head = b"POST %s HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n" % (path, len(body))
    return head + b"".join(e + b"\r\n" for e in extra) + b"\r\n" + body


def bodies(raw: bytes) -> list[dict]:
    return [json.loads(part.split(b"\r\n\r\n", 1)[1].split(b"HTTP/1.1")[0]) for part in raw.split(b"HTTP/1.1 2")[1:]]


def test_keep_alive_and_pipelined_requests_each_get_their_answer_in_order():
    raw = exchange(post(b"/a?x=1", b"one"), post(b"/b", b"two") + post(b"/c", b"three"))
    assert raw.count(b"HTTP/1.1 200 OK\r\n") == 3
    assert [(b["path"], b["body"]) for b in bodies(raw)] == [("/a", "one"), ("/b", "two"), ("/c", "three")]
    assert bodies(raw)[0]["query"] == "x=1"


def test_a_request_split_anywhere_and_a_chunked_body_are_read_whole():
    request = post(b"/split", b"hello world")
    raw = exchange(*(request[i:i + 7] for i in range(0, len(request), 7)), pause=0.001)
    assert bodies(raw)[0]["body"] == "hello world"
    chunked = b"POST /c HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    assert bodies(exchange(chunked))[0]["body"] == "hello world"


def test_http_1_0_and_connection_close_end_the_connection_after_the_answer():
    raw = exchange(b"GET /old HTTP/1.0\r\n\r\n" + post(b"/never", b"x"))
    assert raw.count(b"HTTP/1.1 200") == 1 and b"connection: close" in raw
    raw = exchange(post(b"/last", b"x", b"connection: close") + post(b"/never", b"y"))
    assert [b["path"] for b in bodies(raw)] == ["/last"]


def test_expect_100_continue_is_answered_before_the_body():
    async def main() -> tuple[bytes, bytes]:
        server = await start_server(echo, "127.0.0.1", 0, 1000)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
        writer.write(b"POST /e HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\nexpect: 100-continue\r\n\r\n")
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        writer.write(b"body")
        writer.write_eof()
        rest = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        server.close()
        return interim, rest

    interim, rest = asyncio.run(main())
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["body"] == "body"


def test_bodies_over_the_limit_get_413_declared_or_chunked():
    assert exchange(post(b"/big", b"x" * 1001)).startswith(b"HTTP/1.1 413 ")
    chunked = b"POST /c HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n" + b"200\r\n" + b"x" * 512 + b"\r\n"
    assert exchange(chunked, chunked.split(b"\r\n\r\n", 1)[1]).startswith(b"HTTP/1.1 413 ")


def test_malformed_requests_and_huge_heads_get_400():
    bad = exchange(b"NOT HTTP AT ALL\r\n\r\n")
    assert bad.startswith(b"HTTP/1.1 400 ") and b"send an HTTP/1.1 request" in bad
    huge = exchange(b"GET / HTTP/1.1\r\nx: " + b"y" * 70_000)
    assert huge.startswith(b"HTTP/1.1 400 ") and b"over 64 KB; send shorter headers" in huge


def test_a_streamed_answer_is_chunked_and_a_header_cannot_be_injected():
    raw = exchange(b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n")
    assert b"transfer-encoding: chunked" in raw
    assert raw.endswith(b"\r\n\r\n9\r\ndata: 1\n\n\r\n9\r\ndata: 2\n\n\r\n0\r\n\r\n")
    raw = exchange(b"GET /inject HTTP/1.1\r\nhost: x\r\n\r\n")
    assert b"\r\nset-cookie" not in raw and b"x-model: a  set-cookie: evil=1\r\n" in raw


def test_head_gets_headers_without_a_body():
    raw = exchange(b"HEAD /h HTTP/1.1\r\nhost: x\r\n\r\n")
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"content-length: " in head and rest == b""


class _Writer:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.sent.append(data)


STREAM = (b"POST /a?q=1 HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello"
          b"POST /b HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
          b"GET /c HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 0\r\n\r\n")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_requests_parse_the_same_however_the_bytes_are_split(cuts):
    from routecli.serve.http import _Requests

    requests = _Requests(1000, _Writer())  # type: ignore[arg-type]
    bounds = [0, *sorted(cuts), len(STREAM)]
    for start, end in zip(bounds, bounds[1:]):
        requests.feed(STREAM[start:end])
    got = [(r.method, r.path, r.query, r.body) for r in requests.done]
    assert got == [("POST", "/a", "q=1", b"hello"), ("POST", "/b", "", b"abcde"), ("GET", "/c", "", b"")]


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_are_a_request_a_parse_error_or_too_large_never_a_crash(data):
    import httptools

    from routecli.serve.http import TooLarge, _Requests

    requests = _Requests(50, _Writer())  # type: ignore[arg-type]
    try:
        requests.feed(data)
    except (TooLarge, httptools.HttpParserError):
        return
    assert all(len(r.body) <= 50 for r in requests.done)


def test_an_idle_connection_is_closed_but_a_slow_answer_is_not_cut(monkeypatch):
    """IDLE_TIMEOUT bounds the wait for the client's next request, never the time the handler takes."""
    from routecli.serve import http

    monkeypatch.setattr(http, "IDLE_TIMEOUT", 0.3)

    async def slow(request: HttpRequest) -> HttpResponse:
        await asyncio.sleep(0.6)  # twice the idle timeout: an upstream model thinking
        return HttpResponse(200, b"{}")

    async def main() -> tuple[bytes, bytes, float]:
        loop = asyncio.get_running_loop()
        server = await start_server(slow, "127.0.0.1", 0, 1000)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(post(b"/a", b"{}"))
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n{}"), 5)
        idle_from = loop.time()
        rest = await asyncio.wait_for(reader.read(), 5)  # b"" once serve closes the idle connection
        waited = loop.time() - idle_from
        writer.close()
        server.close()
        return answer, rest, waited

    answer, rest, waited = asyncio.run(main())
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and rest == b""
    assert 0.25 < waited < 3
