"""Offline plumbing for tests of anything that calls a provider: httpx.MockTransport helpers.

Not imported by routecli itself. `mock_client(respond)` gives an httpx.Client whose
every request goes to `respond` and is kept in the returned list, so a test can
check the URL, headers and JSON body that were sent; `mock_provider(cfg, respond,
api_key=...)` wraps that in a real provider. Responders: `json_response`,
`sse_response`, `raising`. For real sockets, use tests/fakevendor.py instead.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable

import httpx

from routecli.config import ProviderConfig
from routecli.domain import Message, Request
from routecli.errors import ProviderError
from routecli.providers import Provider, get_provider

Responder = Callable[[httpx.Request], httpx.Response]
TEST_KEY_ENV = "TEST_API_KEY"


def mock_client(respond: Responder) -> tuple[httpx.Client, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return respond(request)

    return httpx.Client(transport=httpx.MockTransport(handler)), seen


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Responder:
    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body, headers=headers)

    return respond


def sse_bytes(events: Iterable[tuple[str | None, Any]]) -> bytes:
    """An SSE body; data that is not a str is JSON-encoded."""
    out = []
    for name, data in events:
        text = data if isinstance(data, str) else json.dumps(data)
        out.append((f"event: {name}\n" if name else "") + f"data: {text}\n\n")
    return "".join(out).encode()


def feed_all(state: Any, events: Iterable[tuple[str | None, Any]]) -> list[str]:
    """Feed (event name, data) pairs to a wire stream state as the SSE reader would; the deltas."""
    return [state.feed(name or "message", data if isinstance(data, str) else json.dumps(data))
            for name, data in events]


def sse_response(events: Iterable[tuple[str | None, Any]]) -> Responder:
    payload = sse_bytes(events)

    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=payload, headers={"content-type": "text/event-stream"})

    return respond


def raising(exc_type: type[httpx.TransportError], message: str = "boom") -> Responder:
    def respond(request: httpx.Request) -> httpx.Response:
        raise exc_type(message, request=request)

    return respond


def sent_json(request: httpx.Request) -> Any:
    return json.loads(request.content)


def config(kind: str, base_url: str, *, name: str | None = None, api_key_env: str | None = TEST_KEY_ENV,
           read_timeout: float = 5.0, connect_timeout: float = 2.0) -> ProviderConfig:
    return ProviderConfig(name=name or kind, kind=kind, base_url=base_url, api_key_env=api_key_env,
                          connect_timeout=connect_timeout, read_timeout=read_timeout)


def mock_provider(cfg: ProviderConfig, respond: Responder, *,
                  api_key: str | None) -> tuple[Provider, list[httpx.Request]]:
    """A provider for cfg whose HTTP goes to `respond`, and the list of requests it sends."""
    client, seen = mock_client(respond)
    return get_provider(cfg, api_key=api_key, client=client), seen


def user(text: str, **fields: Any) -> Request:
    """A one-message request."""
    return Request(messages=(Message("user", text),), **fields)


def error_from(provider: Provider, request: Request, model: str, *, stream: bool = False) -> ProviderError:
    """The ProviderError that complete() raises; AssertionError when it answers instead."""
    try:
        reply = provider.complete(request, model, stream=stream)
    except ProviderError as error:
        return error
    raise AssertionError(f"expected a ProviderError, got a reply: {reply.text[:80]!r}")
