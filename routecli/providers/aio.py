"""The async twin of `HttpProvider.complete`, for the batch runner and serve.

Same wire functions, same errors (`status_error`, `transport_error`, `guarded`), over one
shared `PooledClient` per provider whose pool holds as many connections as the batch
runs requests at once (or serve at most sends).
"""

from __future__ import annotations

import time
from typing import Callable

import httpx
from httpx_sse import EventSource

from routecli import __version__, fastjson
from routecli.config import ProviderConfig
from routecli.domain import Reply, Request
from routecli.providers.base import (
    DEFAULT_MAX_TOKENS,
    CallContext,
    HttpCall,
    HttpProvider,
    ParsedReply,
    guarded,
    status_error,
    transport_error,
)
from routecli.providers.pool import PooledClient, SlotPool


def make_async_client(cfg: ProviderConfig, connections: int) -> PooledClient:
    from routecli.providers import timeout_for

    if cfg.kind == "llamacpp":  # in-process: the "client" is the loaded model, not a connection pool
        from routecli.providers.llamacpp import Runtime

        return Runtime(cfg)  # type: ignore[return-value]
    return PooledClient(SlotPool(connections), timeout=timeout_for(cfg),
                        headers={"user-agent": f"routecli/{__version__}"})


def get_async_provider(cfg: ProviderConfig, *, api_key: str | None, client: PooledClient,
                       default_max_tokens: int = DEFAULT_MAX_TOKENS) -> AsyncHttpProvider:
    from routecli.providers import wire_for

    if cfg.kind == "llamacpp":
        from routecli.providers.llamacpp import AsyncLlamaCppProvider

        return AsyncLlamaCppProvider(cfg, client, default_max_tokens=default_max_tokens)  # type: ignore[return-value]
    return AsyncHttpProvider(cfg, wire_for(cfg), api_key=api_key, client=client, default_max_tokens=default_max_tokens)


class AsyncHttpProvider(HttpProvider):
    """HttpProvider's configuration and wire format, sent over a PooledClient."""

    client: PooledClient  # type: ignore[assignment]

    async def complete(self, request: Request, model: str, *, stream: bool = False,  # type: ignore[override]
                       on_text: Callable[[str], None] | None = None) -> Reply:
        ctx = CallContext(self.cfg, model, self.api_key)
        call = self.wire.build_call(
            request, model, stream=stream, base_url=self.cfg.base_url,
            api_key=self.api_key, default_max_tokens=self.default_max_tokens,
        )
        started = time.perf_counter()
        first: list[float] = []  # when the first answer text arrived, streaming only
        parsed = await (self._stream(call, ctx, first, on_text) if stream else self._once(call, ctx))
        return Reply(
            text=parsed.text, usage=parsed.usage, model=parsed.model or model, finish_reason=parsed.finish_reason,
            ttft_ms=(first[0] - started) * 1000 if first else None,
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    async def _once(self, call: HttpCall, ctx: CallContext) -> ParsedReply:  # type: ignore[override]
        body = fastjson.dumps(call.json)
        try:
            answer = await self.client.exchange(call.method, call.url, call.headers, body)
        except httpx.TransportError as exc:
            raise transport_error(exc, ctx) from None
        if not 200 <= answer.status < 300:
            raise status_error(answer.status, answer.headers, answer.text, ctx, self.wire)
        return guarded(ctx, lambda: self.wire.parse_response(fastjson.loads(answer.content)))

    async def _stream(self, call: HttpCall, ctx: CallContext, first: list[float],  # type: ignore[override]
                      on_text: Callable[[str], None] | None = None) -> ParsedReply:
        try:
            async with self.client.stream(call.method, call.url, headers=dict(call.headers), json=call.json) as response:
                if not response.is_success:
                    await response.aread()
                    raise status_error(response.status_code, response.headers, response.text, ctx, self.wire)
                return await self._read_events(response, ctx, first, on_text)
        except httpx.TransportError as exc:
            raise transport_error(exc, ctx) from None

    async def _read_events(  # type: ignore[override]
        self, response: httpx.Response, ctx: CallContext, first: list[float],
        on_text: Callable[[str], None] | None = None,
    ) -> ParsedReply:
        try:
            if "text/event-stream" not in response.headers.get("content-type", ""):
                # Some OpenAI-compatible servers ignore `stream` and answer with one JSON body.
                body = await response.aread()
                parsed = guarded(ctx, lambda: self.wire.parse_response(fastjson.loads(body)))
                if on_text and parsed.text:
                    on_text(parsed.text)
                return parsed
            state = self.wire.new_stream()
            async for event in EventSource(response).aiter_sse():
                delta = guarded(ctx, state.feed, event.event, event.data)
                if delta:
                    if not first:
                        first.append(time.perf_counter())
                    if on_text:
                        on_text(delta)
                if state.done:
                    break
        except httpx.TransportError as exc:
            raise transport_error(exc, ctx, mid_stream=True) from None
        return guarded(ctx, state.result)
