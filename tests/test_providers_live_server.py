"""End to end over real sockets: each wire format against tests/fakevendor.py on 127.0.0.1."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import fakevendor  # tests/ is on sys.path: pytest puts a test file's folder there
from routecli.domain import Message, Request, Usage
from routecli.errors import ProviderError
from routecli.providers import get_provider, make_client
from mockvendor import config

KEY = "fake-key-0123456789"
PREFIX = {"openai": "/v1", "anthropic": "/v1", "gemini": "/v1beta"}
KINDS = tuple(PREFIX)


@pytest.fixture(scope="module")
def root():
    with fakevendor.serve(key=KEY) as url:
        yield url


@pytest.fixture
def call(root):
    """call(kind, text, stream=..., key=..., read_timeout=...) -> (Reply, deltas)."""
    clients = []

    def run(kind, text, *, stream=True, key=KEY, read_timeout=5.0, base_url=None, system=None):
        cfg = config(kind, base_url or root + PREFIX[kind], read_timeout=read_timeout, connect_timeout=1.0)
        client = make_client(cfg)
        clients.append(client)
        deltas: list[str] = []
        request = Request(messages=(Message("user", text),), system=system, max_tokens=100)
        reply = get_provider(cfg, api_key=key, client=client).complete(
            request, f"{kind}-model", stream=stream, on_text=deltas.append)
        return reply, deltas

    yield run
    for client in clients:
        client.close()


def failure(call, kind, text, **options) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        call(kind, text, **options)
    assert caught.value.provider == kind and KEY not in caught.value.message
    return caught.value


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [True, False])
def test_answer_and_usage(call, kind, stream):
    reply, deltas = call(kind, "hello big world [[cached=4 reasoning=3]]", stream=stream, system="be kind")
    assert reply.text == "echo: hello big world"
    assert deltas == (["echo:", " hello", " big", " world"] if stream else ["echo: hello big world"])
    assert reply.model == f"{kind}-model"
    reasoning = 0 if kind == "anthropic" else 3  # Anthropic reports thinking inside output_tokens only
    assert reply.usage == Usage(input_tokens=5 + 4, output_tokens=4 + 3, cached_tokens=4, reasoning_tokens=reasoning)
    assert (reply.ttft_ms is not None) == stream and reply.latency_ms > 0


@pytest.mark.parametrize("kind", KINDS)
def test_wrong_key_is_401(call, kind):
    error = failure(call, kind, "hi", key="wrong-key")
    assert (error.kind, error.status) == ("auth", 401)
    assert "check TEST_API_KEY" in error.message and "wrong-key" not in error.message


@pytest.mark.parametrize("kind", KINDS)
def test_429_with_retry_after(call, kind):
    error = failure(call, kind, "hi [[status=429 retry_after=2]]")
    assert (error.kind, error.status, error.retry_after) == ("rate_limit", 429, 2.0)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [True, False])
def test_5xx(call, kind, stream):
    error = failure(call, kind, "hi [[status=503]]", stream=stream)
    assert (error.kind, error.status) == ("server", 503) and "fake error 503" in error.message


@pytest.mark.parametrize("kind", KINDS)
def test_timeout_before_headers(call, kind):
    started = time.perf_counter()
    error = failure(call, kind, "hi [[delay=1]]", read_timeout=0.2)
    assert error.kind == "timeout" and "0.2 s" in error.message
    assert time.perf_counter() - started < 0.9


def test_timeout_between_stream_chunks(call):
    error = failure(call, "anthropic", "hi [[slow=0.5]]", read_timeout=0.2)
    assert error.kind == "timeout"


@pytest.mark.parametrize("kind", KINDS)
def test_connection_refused(call, kind):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = failure(call, kind, "hi", base_url=f"http://127.0.0.1:{port}/v1")
    assert error.kind == "connection" and f"cannot connect to http://127.0.0.1:{port}/v1" in error.message


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [True, False])
def test_malformed(call, kind, stream):
    assert failure(call, kind, "hi [[malformed]]", stream=stream).kind == "malformed"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("directive", ["cut", "drop"])
def test_cut_stream(call, kind, directive):
    assert failure(call, kind, f"one two three [[{directive}]]").kind == "stream_cut"


def test_dropped_connection_without_streaming(call):
    error = failure(call, "openai", "hi [[drop]]", stream=False)
    assert error.kind == "connection" and "peer closed connection" in error.message


@pytest.mark.parametrize("kind", KINDS)
def test_in_stream_error(call, kind):
    error = failure(call, kind, "hi there [[error=overloaded_error]]")
    assert error.kind == "server" and f"({kind} said: fake overloaded_error)" in error.message


def test_times_fails_then_recovers_and_requests_are_logged(root, call):
    fakevendor.reset(root)
    text = "retry me [[status=503 times=2]]"
    for _ in range(2):
        assert failure(call, "gemini", text).kind == "server"
    assert call("gemini", text)[0].text == "echo: retry me"
    log = fakevendor.requests_log(root)
    assert [entry["path"] for entry in log] == ["/v1beta/models/gemini-model:streamGenerateContent?alt=sse"] * 3
    assert log[0]["body"]["contents"][0]["parts"][0]["text"] == text
    assert KEY not in str(log)
    fakevendor.reset(root)
    assert fakevendor.requests_log(root) == []


def test_many_concurrent_requests(root):
    cfg = config("openai", root + "/v1")
    with make_client(cfg) as client:
        provider = get_provider(cfg, api_key=KEY, client=client)

        def one(i: int) -> str:
            request = Request(messages=(Message("user", f"n{i}"),))
            return provider.complete(request, "m", stream=i % 2 == 0).text

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=32) as pool:
            texts = list(pool.map(one, range(300)))
    assert texts == [f"echo: n{i}" for i in range(300)]
    assert time.perf_counter() - started < 5
