"""Talking to model vendors over plain httpx, one module per wire format.

`WIRE_FORMATS` maps `ProviderConfig.kind` to a wire format's pure functions; the
vendor itself is only config (OpenRouter, Groq, Ollama, vLLM... are all
`kind = "openai"` with another base_url). Nothing here builds a client or reads a
key at import time.
"""

from __future__ import annotations

import httpx

from routecli import __version__
from routecli.config import PROVIDER_KINDS, ProviderConfig
from routecli.errors import ConfigError
from routecli.providers import anthropic, gemini, openai
from routecli.providers.base import (
    DEFAULT_MAX_TOKENS,
    CallContext,
    HttpCall,
    HttpProvider,
    ParsedReply,
    Provider,
    StreamState,
    WireFormat,
    status_error,
    transport_error,
)

__all__ = [
    "WIRE_FORMATS", "CallContext", "HttpCall", "HttpProvider", "ParsedReply", "Provider", "StreamState",
    "WireFormat", "get_provider", "make_client", "wire_for", "status_error", "timeout_for", "transport_error",
]

WIRE_FORMATS: dict[str, WireFormat] = {wire.kind: wire for wire in (openai.WIRE, anthropic.WIRE, gemini.WIRE)}


def timeout_for(cfg: ProviderConfig) -> httpx.Timeout:
    """read_timeout bounds each silence between bytes, so a long but live stream never trips it."""
    return httpx.Timeout(connect=cfg.connect_timeout, read=cfg.read_timeout,
                         write=cfg.read_timeout, pool=cfg.connect_timeout)


def make_client(cfg: ProviderConfig) -> httpx.Client:
    if cfg.kind == "llamacpp":  # in-process: the "client" is the loaded model, not a connection
        from routecli.providers.llamacpp import Runtime

        return Runtime(cfg)  # type: ignore[return-value]
    return httpx.Client(timeout=timeout_for(cfg), headers={"user-agent": f"routecli/{__version__}"})


def wire_for(cfg: ProviderConfig) -> WireFormat:
    wire = WIRE_FORMATS.get(cfg.kind)
    if wire is None:
        raise ConfigError(
            f"[providers.{cfg.name}] has kind {cfg.kind!r}; use one of {', '.join(PROVIDER_KINDS)}"
        )
    return wire


def get_provider(cfg: ProviderConfig, *, api_key: str | None, client: httpx.Client,
                 default_max_tokens: int = DEFAULT_MAX_TOKENS) -> Provider:
    if cfg.kind == "llamacpp":
        from routecli.providers.llamacpp import LlamaCppProvider

        return LlamaCppProvider(cfg, client, default_max_tokens=default_max_tokens)
    return HttpProvider(cfg, wire_for(cfg), api_key=api_key, client=client, default_max_tokens=default_max_tokens)
