"""The OpenAI chat-completions wire format: pure build and parse functions, no I/O.

Also spoken by OpenRouter, Groq, Together, DeepSeek, Mistral, Ollama, vLLM,
llama.cpp server and LM Studio: those are config entries with another base_url.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import httpx

from routecli.domain import Message, Request, Usage
from routecli.errors import ProviderError
from routecli.providers.base import HttpCall, ParsedReply, StreamAccumulator, WireFormat
from routecli.providers.base import count, error_message, json_headers, kind_for_status

# Hosts whose newer models reject `max_tokens` and want `max_completion_tokens`;
# most compatible servers only know `max_tokens`.
COMPLETION_TOKENS_HOSTS = frozenset({"api.openai.com"})


def build_call(request: Request, model: str, *, stream: bool, base_url: str,
               api_key: str | None, default_max_tokens: int) -> HttpCall:
    """default_max_tokens is unused: the API has its own default when max_tokens is absent."""
    body: dict[str, Any] = {"model": model, "messages": _messages(request)}
    if request.max_tokens is not None:
        body[max_tokens_field(base_url)] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    headers = json_headers(stream)
    if api_key:  # local servers (Ollama, vLLM...) run without one
        headers["authorization"] = f"Bearer {api_key}"
    return HttpCall("POST", f"{base_url.rstrip('/')}/chat/completions", headers, body, stream)


@lru_cache(maxsize=64)  # a process talks to a handful of base URLs; parsing one took ~15 us a call
def max_tokens_field(base_url: str) -> str:
    host = httpx.URL(base_url).host
    return "max_completion_tokens" if host in COMPLETION_TOKENS_HOSTS else "max_tokens"


def _messages(request: Request) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if request.system:
        out.append({"role": "system", "content": request.system})
    out.extend({"role": message.role, "content": _content(message)} for message in request.messages)
    return out


def _content(message: Message) -> str | list[dict[str, Any]]:
    if not message.images:
        return message.text
    parts: list[dict[str, Any]] = [{"type": "text", "text": message.text}] if message.text else []
    for image in message.images:
        url = f"data:{image.media_type};base64,{image.data}"
        parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts


def usage_from(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    return Usage(
        input_tokens=count(raw, "prompt_tokens"),
        output_tokens=count(raw, "completion_tokens"),
        cached_tokens=count(raw, "prompt_tokens_details", "cached_tokens"),
        reasoning_tokens=count(raw, "completion_tokens_details", "reasoning_tokens"),
    )


def parse_response(body: Any) -> ParsedReply:
    choice = body["choices"][0]
    message = choice["message"]
    text = message.get("content") or message.get("refusal") or ""
    return ParsedReply(text, usage_from(body.get("usage")), body.get("model") or "", choice.get("finish_reason"))


class ChatStream(StreamAccumulator):
    """Chunks of `data: {...}`, a usage chunk with empty choices, then `data: [DONE]`."""

    terminator = "data: [DONE]"

    def feed(self, event_name: str, data: str) -> str:
        data = data.strip()
        if not data:
            return ""
        if data == "[DONE]":
            self._done = True
            return ""
        chunk = json.loads(data)
        if chunk.get("error"):  # OpenRouter and vLLM report mid-stream failures this way
            code = chunk["error"].get("code") if isinstance(chunk["error"], dict) else None
            kind = kind_for_status(code) if isinstance(code, int) else "server"
            raise ProviderError(error_message(chunk), kind=kind)
        self.model = chunk.get("model") or self.model
        if chunk.get("usage"):
            self.usage = usage_from(chunk["usage"])
        delta = ""
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
            # reasoning_content (DeepSeek, vLLM) is thinking, not answer text
            delta = (choice.get("delta") or {}).get("content") or ""
        return self._add(delta)


WIRE = WireFormat("openai", build_call, parse_response, ChatStream, error_message)
