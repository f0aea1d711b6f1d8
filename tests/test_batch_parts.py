"""The batch's parts on their own: async provider, connection pool, rate limits, backoff, group commit, schema."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import inspect

from routecli.batch.ratelimit import Bucket, Limiter, estimate_tokens
from routecli.batch.runner import RETRYABLE, backoff_delay
from routecli.batch.writer import GroupWriter, Item
from routecli.domain import Message, Request, Usage
from routecli.errors import ProviderError
from routecli.providers.aio import get_async_provider, make_async_client
from routecli.providers.pool import SlotPool
from mockvendor import config

KEY = "fake-vendor-key-0123456789"  # what the session's fake vendor expects
PREFIX = {"openai": "/v1", "anthropic": "/v1", "gemini": "/v1beta"}


def ask(vendor, kind, text, *, stream=False, key=KEY, connections=4, times=1):
    cfg = config(kind, vendor + PREFIX[kind], read_timeout=5.0, connect_timeout=1.0)

    async def main():
        async with make_async_client(cfg, connections) as client:
            provider = get_async_provider(cfg, api_key=key, client=client)
            request = Request(messages=(Message("user", text),), system="be brief", max_tokens=50)
            replies = await asyncio.gather(*(provider.complete(request, f"{kind}-model", stream=stream)
                                             for _ in range(times)))
            return replies, client._transport

    return asyncio.run(main())


@pytest.mark.parametrize("kind", list(PREFIX))
@pytest.mark.parametrize("stream", [False, True])
def test_async_provider_answers_in_each_wire_format(vendor_root, kind, stream):
    [reply], _ = ask(vendor_root, kind, "hello world [[cached=2]]", stream=stream)
    assert reply.text == "echo: hello world" and reply.model == f"{kind}-model"
    assert reply.usage.input_tokens == 6 and reply.usage.cached_tokens == 2
    assert (reply.ttft_ms is not None) == stream and reply.latency_ms > 0


@pytest.mark.parametrize("text, stream, kind, retry_after", [
    ("x [[status=429 retry_after=2]]", False, "rate_limit", 2.0),
    ("x [[status=503]]", False, "server", None),
    ("x [[status=400]]", False, "bad_request", None),
    ("x [[cut]]", True, "stream_cut", None),
    ("x [[drop]]", False, "connection", None),
    ("x [[malformed]]", False, "malformed", None),
])
def test_async_errors_are_the_sync_paths_errors(vendor_root, text, stream, kind, retry_after):
    with pytest.raises(ProviderError) as caught:
        ask(vendor_root, "openai", text, stream=stream)
    assert caught.value.kind == kind and caught.value.retry_after == retry_after
    assert caught.value.provider == "openai" and KEY not in caught.value.message


def test_wrong_key_is_auth_and_never_shown(vendor_root):
    with pytest.raises(ProviderError) as caught:
        ask(vendor_root, "anthropic", "hi", key="sk-wrong-123456")
    assert caught.value.kind == "auth" and "sk-wrong-123456" not in caught.value.message


def test_pool_never_opens_more_connections_than_its_size(vendor_root):
    replies, pool = ask(vendor_root, "openai", "hi [[delay=0.05]]", connections=3, times=12)
    assert len(replies) == 12 and isinstance(pool, SlotPool) and pool.opened == 3


def test_the_shared_client_keeps_no_cookies_between_requests():
    """In serve one client carries every member's calls: a cookie the upstream set for one must
    not be sent on the next."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"cookie": self.headers.get("cookie")}).encode()
            self.send_response(200)
            self.send_header("set-cookie", "session=member-one; Path=/")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"

    async def main():
        async with make_async_client(config("openai", url), 2) as client:
            return [(await client.get(url)).json()["cookie"] for _ in range(3)]

    try:
        assert asyncio.run(main()) == [None, None, None]
    finally:
        server.shutdown()


def failure_kind(base_url: str, text: str, read_timeout: float) -> str:
    cfg = config("openai", base_url, read_timeout=read_timeout, connect_timeout=1.0)

    async def main():
        async with make_async_client(cfg, 1) as client:
            provider = get_async_provider(cfg, api_key=KEY, client=client)
            await provider.complete(Request(messages=(Message("user", text),)), "m")

    with pytest.raises(ProviderError) as caught:
        asyncio.run(main())
    return caught.value.kind


def test_connection_refused_is_a_connection_error():
    assert failure_kind("http://127.0.0.1:9/v1", "hi", 1.0) == "connection"


def test_a_silent_server_is_a_timeout(vendor_root):
    assert failure_kind(vendor_root + "/v1", "x [[delay=1]]", 0.2) == "timeout"


# ---------------------------------------------------------------- rate limits and backoff


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_holds_one_seconds_worth_and_refills_at_the_rate():
    clock = Clock()
    bucket = Bucket(120, clock)  # 2 per second
    assert bucket.capacity == 2 and bucket.wait_for(1) == 0
    bucket.take(1), bucket.take(1)
    assert bucket.wait_for(1) == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.wait_for(1) == 0
    bucket.take(5)  # more than it holds: taken when full, paid back over time
    assert bucket.wait_for(1) == pytest.approx(2.5)


def test_limiter_settles_tokens_with_real_usage_and_pauses_on_429():
    clock = Clock()
    limiter = Limiter(rpm=None, tpm=6000, clock=clock)  # 100 tokens per second
    assert limiter.delay(80) == 0
    limiter.tokens.take(80)
    limiter.settle(80, Usage(10, 10))  # used 20 of the 80 reserved: 60 come back
    assert limiter.tokens.level == pytest.approx(80)
    limiter.pause(3)
    assert limiter.delay(1) == pytest.approx(3)
    assert Limiter(None, None, clock).delay(10**9) == 0


def test_limiter_wait_stops_when_the_batch_stops():
    async def main():
        limiter, stop = Limiter(rpm=60, tpm=None), asyncio.Event()
        assert await limiter.acquire(1, stop)  # the first is free
        asyncio.get_running_loop().call_later(0.05, stop.set)
        return await limiter.acquire(1, stop)  # would wait ~1 s

    assert asyncio.run(main()) is False


def test_token_estimate_counts_prompt_and_answer_cap():
    request = Request(messages=(Message("user", "x" * 400),), max_tokens=50)
    assert estimate_tokens(request) == 151


def test_backoff_grows_with_jitter_and_honours_retry_after():
    delays = [backoff_delay(attempt, 1.0, None) for attempt in (1, 2, 3, 4)]
    assert 0.5 <= delays[0] <= 1 and 1 <= delays[1] <= 2 and 2 <= delays[2] <= 4 and 4 <= delays[3] <= 8
    assert 3 <= backoff_delay(1, 1.0, 3.0) <= 3.3
    assert backoff_delay(30, 1.0, None) <= 60
    assert RETRYABLE == {"rate_limit", "server", "timeout", "connection", "stream_cut"}


# ---------------------------------------------------------------- group commit


def test_writer_groups_what_arrives_during_a_commit_and_reports_failures():
    groups: list[int] = []

    def commit(attempts, lines):
        groups.append(len(lines))
        if any(line.get("boom") for line in lines):
            raise RuntimeError("disk full")

    async def main():
        writer = GroupWriter(commit)
        writer.start()
        await asyncio.gather(*(writer.put(Item({"id": str(i)}, {"n": i}), wait=True) for i in range(50)))
        with pytest.raises(RuntimeError):
            await writer.put(Item(None, {"boom": True}), wait=True)
        with pytest.raises(RuntimeError):
            await writer.close()
        return writer.stats

    stats = asyncio.run(main())
    assert sum(groups) == 51 and len(groups) < 50 and stats.transactions == len(groups) - 1
    assert stats.attempts == 50 and stats.largest > 1


def _recording_writer(groups: list[list[str]], linger: float) -> GroupWriter:
    """A started lingering writer whose commits append each group's row ids to `groups`."""
    writer = GroupWriter(lambda attempts, _lines: groups.append([a["id"] for a in attempts]), linger=linger)
    writer.start()
    return writer


def test_lingering_writer_groups_rows_nobody_waits_for_and_commits_a_waited_row_at_once():
    groups: list[list[str]] = []

    async def main():
        loop = asyncio.get_running_loop()
        writer = _recording_writer(groups, linger=0.2)
        started = loop.time()
        for i in range(3):  # trickling in, as one client's requests do
            await writer.put(Item({"id": f"free{i}"}, {}), wait=False)
            await asyncio.sleep(0.01)
        assert groups == []  # still lingering: nothing committed yet
        await writer.put(Item({"id": "waited"}, {}), wait=True)  # a waiter cuts the linger short
        waited = loop.time() - started
        await writer.put(Item({"id": "late"}, {}), wait=False)
        await asyncio.sleep(0.3)  # past the linger: committed without anyone asking
        after_linger = list(groups)
        await writer.put(Item({"id": "at-close"}, {}), wait=False)
        await writer.close()  # flushes without waiting the linger out
        await asyncio.wait_for(writer.flush(), 1)  # once closed there is nothing to wait for
        return waited, after_linger, loop.time() - started

    waited, after_linger, total = asyncio.run(main())
    assert waited < 0.15
    assert after_linger == [["free0", "free1", "free2", "waited"], ["late"]]
    assert groups[-1] == ["at-close"] and total < 0.6


def test_a_waited_row_queued_before_the_linger_begins_is_not_kept_waiting():
    groups: list[list[str]] = []

    async def main():
        loop = asyncio.get_running_loop()
        writer = _recording_writer(groups, linger=0.5)
        writer.put_nowait(Item({"id": "free"}, {}))  # both queued before the writer first runs
        started = loop.time()
        await writer.put(Item({"id": "waited"}, {}), wait=True)
        waited = loop.time() - started
        await writer.close()
        return waited

    assert asyncio.run(main()) < 0.25
    assert groups == [["free", "waited"]]


# ---------------------------------------------------------------- schema


def test_runs_tables_match_their_migration(tmp_path):
    from routecli.store import open_store
    from routecli.store.runs import RUN_LINES, RUNS

    store = open_store(tmp_path / "r.db")
    try:
        for table in (RUNS, RUN_LINES):
            migrated = {c["name"]: (c["nullable"], bool(c["primary_key"]))
                        for c in inspect(store.engine).get_columns(table.name)}
            model = {c.name: (c.nullable, c.primary_key) for c in table.columns}
            assert model == migrated, table.name
        assert "run_id" in {ix["column_names"][0] for ix in inspect(store.engine).get_indexes("attempts")}
    finally:
        store.close()


# ---------------------------------------------------------------- the pool over TLS, and its timeouts


@pytest.fixture
def tls_server(tmp_path):
    """A one-route HTTPS server on 127.0.0.1 with a throwaway self-signed certificate."""
    import json
    import shutil
    import ssl
    import subprocess
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    if not shutil.which("openssl"):
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers["content-length"]))
            body = json.dumps({"model": "m", "choices": [{"message": {"content": "over tls"},
                               "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 2}})
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}", cert
    server.shutdown()


def test_pool_speaks_tls_and_reuses_its_connections(tls_server):
    import ssl

    import httpx

    root, cert = tls_server

    async def main():
        trusted = ssl.create_default_context(cafile=str(cert))
        pool = SlotPool(2, ssl_context=trusted)
        async with httpx.AsyncClient(transport=pool) as client:
            for _ in range(4):
                response = await client.post(f"{root}/v1/chat/completions", json={"x": 1})
                assert response.json()["choices"][0]["message"]["content"] == "over tls"
        untrusting = httpx.AsyncClient(transport=SlotPool(1))
        with pytest.raises(httpx.ConnectError):
            await untrusting.post(f"{root}/v1/chat/completions", json={})
        await untrusting.aclose()
        return pool.opened

    assert asyncio.run(main()) == 1

