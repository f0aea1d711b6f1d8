"""The async providers' HTTP/1.1 connections (providers/h1.py, pool.py) against servers that
behave the ways real ones do: close after each answer, hang up on idle connections, answer
chunked, answer 100 Continue first."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routecli.providers.pool import SlotPool

TIMEOUT = httpx.Timeout(2.0)


async def raw_server(answer):
    """A TCP server whose handler gets each request's bytes and the writer; returns (server, url, seen)."""
    seen: list[bytes] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                seen.append(head + await reader.readexactly(length))
                if not await answer(writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", seen


def respond(body: bytes, *extra: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), b"".join(e + b"\r\n" for e in extra), body)


def run(answer, calls):
    async def main():
        server, url, seen = await raw_server(answer)
        pool = SlotPool(2)
        try:
            results = await calls(pool, url)
        finally:
            await pool.aclose()
            server.close()
        return results, seen, pool.opened

    return asyncio.run(main())


def test_keeps_the_connection_and_sends_host_target_and_body():
    async def answer(writer):
        writer.write(respond(b'{"ok": 1}'))
        return True

    async def calls(pool, url):
        return [await pool.exchange("POST", f"{url}/v1beta/models/m:generate?alt=sse", [(b"x-k", b"v")], b"{}",
                                    TIMEOUT) for _ in range(3)]

    answers, seen, opened = run(answer, calls)
    assert [a.content for a in answers] == [b'{"ok": 1}'] * 3 and answers[0].headers["content-length"] == "9"
    assert opened == 1
    assert seen[0].startswith(b"POST /v1beta/models/m:generate?alt=sse HTTP/1.1\r\n")
    assert b"host: 127.0.0.1:" in seen[0] and b"x-k: v" in seen[0] and seen[0].endswith(b"\r\n\r\n{}")


def test_a_server_that_closes_after_each_answer_gets_a_new_connection_each_time():
    async def answer(writer):
        writer.write(respond(b"done", b"connection: close"))
        return False

    async def calls(pool, url):
        return [(await pool.exchange("POST", url + "/x", [], b"", TIMEOUT)).text for _ in range(3)]

    texts, _, opened = run(answer, calls)
    assert texts == ["done"] * 3 and opened == 3


def test_an_idle_connection_the_server_hung_up_is_not_reused():
    async def answer(writer):
        writer.write(respond(b"once"))
        await writer.drain()
        return False  # hangs up without saying so, as a server's idle timeout does

    async def calls(pool, url):
        first = await pool.exchange("POST", url + "/x", [], b"", TIMEOUT)
        await asyncio.sleep(0.05)  # the hang-up reaches the client's loop
        second = await pool.exchange("POST", url + "/x", [], b"", TIMEOUT)
        return first.text, second.text

    texts, _, opened = run(answer, calls)
    assert texts == ("once", "once") and opened == 2


def test_chunked_and_100_continue_answers_are_read_whole():
    async def answer(writer):
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n"
                     b"HTTP/1.1 429 Too Many Requests\r\ntransfer-encoding: chunked\r\nretry-after: 3\r\n\r\n"
                     b"4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n")
        return True

    async def calls(pool, url):
        return await pool.exchange("POST", url + "/x", [], b"{}", TIMEOUT)

    answer_, _, _ = run(answer, calls)
    assert (answer_.status, answer_.headers["retry-after"], answer_.content) == (429, "3", b'{"a":1}')


@pytest.mark.parametrize("reply, error", [
    (b"", httpx.RemoteProtocolError),  # hung up without a word
    (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc", httpx.RemoteProtocolError),  # body cut short
    (b"NOT HTTP\r\n\r\n", httpx.RemoteProtocolError),
    (b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * 200_000 + b"\r\n\r\n", httpx.RemoteProtocolError),  # head over 100 KB
])
def test_broken_answers_are_httpx_errors_and_free_the_slot(reply, error):
    async def answer(writer):
        writer.write(reply)
        return False

    async def calls(pool, url):
        for _ in range(3):  # a pool of 2: a leaked slot would hang the third call
            with pytest.raises(error):
                await asyncio.wait_for(pool.exchange("POST", url + "/x", [], b"", TIMEOUT), 5)

    run(answer, calls)


def test_a_silent_server_is_a_read_timeout():
    async def answer(writer):
        await asyncio.sleep(1)
        return False

    async def calls(pool, url):
        with pytest.raises(httpx.ReadTimeout):
            await pool.exchange("POST", url + "/x", [], b"", httpx.Timeout(0.1))

    run(answer, calls)


def test_the_read_timeout_bounds_each_wait_not_the_whole_answer_nor_a_later_call():
    """A body trickling in (each piece within the timeout, the whole longer) is read; a later call on
    the same kept-alive connection with a shorter timeout than the one before times out on its own."""
    calls_seen: list[int] = []

    async def answer(writer):
        calls_seen.append(1)
        if len(calls_seen) == 2:  # answered after the first call's timer fired: its next one is 5 s off
            await asyncio.sleep(0.4)
            writer.write(respond(b"{}"))
            return True
        if len(calls_seen) == 3:
            await asyncio.sleep(1.5)  # the third call: silence
            return False
        body = b"x" * 50
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body))
        for i in range(5):
            await asyncio.sleep(0.06)
            writer.write(body[i * 10:(i + 1) * 10])
        return True

    async def calls(pool, url):
        first = await pool.exchange("POST", url + "/x", [], b"", httpx.Timeout(30.0, read=0.25))
        await pool.exchange("POST", url + "/x", [], b"", httpx.Timeout(30.0, read=5.0))  # its timer is due in 5 s
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(httpx.ReadTimeout):
            await pool.exchange("POST", url + "/x", [], b"", httpx.Timeout(30.0, read=0.1))
        return first.content, loop.time() - started

    (content, waited), _, opened = run(answer, calls)
    assert content == b"x" * 50 and opened == 1 and waited < 0.8


def test_a_url_that_is_not_http_is_refused():
    async def calls(pool, url):
        with pytest.raises(httpx.UnsupportedProtocol):
            await pool.exchange("POST", "ftp://example.invalid/x", [], b"", TIMEOUT)

    run(lambda writer: None, calls)


def test_a_stream_read_to_its_end_marker_keeps_its_connection_one_given_up_midway_does_not():
    """httpx-sse readers stop at [DONE], before the body's closing chunk: the pool reads that
    tail and reuses the connection. A stream still running when its reader leaves is closed
    after a short wait, not kept."""
    import time

    async def answer(writer):
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/event-stream\r\n\r\n"
                     b"e\r\ndata: [DONE]\n\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.02)  # the closing chunk comes a moment after the end marker
        writer.write(b"0\r\n\r\n")
        return True

    async def first_chunk_only(client, url):
        async with client.stream("POST", url + "/x", json={}) as response:
            async for chunk in response.aiter_bytes():
                return chunk

    async def calls(pool, url):
        async with httpx.AsyncClient(transport=pool) as client:
            chunks = [await first_chunk_only(client, url) for _ in range(3)]
        return chunks, pool.opened

    (chunks, opened), _, _ = run(answer, calls)
    assert chunks == [b"data: [DONE]\n\n"] * 3 and opened == 1

    async def endless(writer):
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        await asyncio.sleep(2)
        return False

    async def give_up(pool, url):
        async with httpx.AsyncClient(transport=pool) as client:
            started = time.monotonic()
            chunks = [await first_chunk_only(client, url) for _ in range(2)]
            return chunks, time.monotonic() - started, pool.opened

    (chunks, took, opened), _, _ = run(endless, give_up)
    assert chunks == [b"hello"] * 2 and opened == 2 and took < 1.0


def test_a_body_without_length_ends_with_the_connection_and_is_not_reused():
    async def answer(writer):
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"until\": \"close\"}")
        return False  # the hang-up ends the body

    async def calls(pool, url):
        return [(await pool.exchange("POST", url + "/x", [], b"", TIMEOUT)).content for _ in range(2)]

    contents, _, opened = run(answer, calls)
    assert contents == [b'{"until": "close"}'] * 2 and opened == 2


def test_a_header_with_a_line_break_is_refused_without_showing_its_value():
    async def answer(writer):
        writer.write(respond(b"never"))
        return True

    async def calls(pool, url):
        with pytest.raises(httpx.LocalProtocolError) as refused:
            await pool.exchange("POST", url + "/x", [(b"authorization", b"Bearer sk-secret\r\nx-evil: 1")], b"",
                                TIMEOUT)
        assert "sk-secret" not in str(refused.value)
        return (await pool.exchange("POST", url + "/x", [], b"", TIMEOUT)).text

    text, seen, _ = run(answer, calls)
    assert text == "never" and len(seen) == 1 and b"x-evil" not in seen[0]


ANSWER = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nx-a: 1\r\ntransfer-encoding: chunked\r\n\r\n"
          b"4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(ANSWER)), max_size=12))
def test_a_response_parses_the_same_however_the_bytes_are_split(cuts):
    from routecli.providers.h1 import _Response

    response = _Response()
    bounds = [0, *sorted(cuts), len(ANSWER)]
    for start, end in zip(bounds, bounds[1:]):
        response.feed(ANSWER[start:end])
    assert (response.status, response.headers, b"".join(response.chunks), response.complete) == (
        200, [(b"x-a", b"1"), (b"transfer-encoding", b"chunked")], b'{"a":1}', True)
