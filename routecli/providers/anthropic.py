"""The Anthropic messages wire format: pure build and parse functions, no I/O."""

from __future__ import annotations

import json
from typing import Any

from routecli.domain import Message, Request, Usage
from routecli.errors import ProviderError
from routecli.providers.base import HttpCall, ParsedReply, StreamAccumulator, WireFormat
from routecli.providers.base import count, error_message, json_headers

API_VERSION = "2023-06-01"
# error.type in error bodies and `event: error` -> ProviderError kind
ERROR_KINDS = {
    "invalid_request_error": "bad_request",
    "request_too_large": "bad_request",
    "authentication_error": "auth",
    "permission_error": "auth",
    "not_found_error": "not_found",
    "rate_limit_error": "rate_limit",
    "timeout_error": "timeout",
    "api_error": "server",
    "overloaded_error": "server",
}


def build_call(request: Request, model: str, *, stream: bool, base_url: str,
               api_key: str | None, default_max_tokens: int) -> HttpCall:
    max_tokens = request.max_tokens if request.max_tokens is not None else default_max_tokens
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": max_tokens,
        "messages": [{"role": message.role, "content": _content(message)} for message in request.messages],
    }
    if request.system:
        body["system"] = request.system
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if stream:
        body["stream"] = True
    headers = {**json_headers(stream), "anthropic-version": API_VERSION}
    if api_key:
        headers["x-api-key"] = api_key
    return HttpCall("POST", f"{base_url.rstrip('/')}/messages", headers, body, stream)


def _content(message: Message) -> str | list[dict[str, Any]]:
    if not message.images:
        return message.text
    # Anthropic's vision guide: images before the text that refers to them work best.
    blocks: list[dict[str, Any]] = [
        {"type": "image", "source": {"type": "base64", "media_type": image.media_type, "data": image.data}}
        for image in message.images
    ]
    if message.text:
        blocks.append({"type": "text", "text": message.text})
    return blocks


def usage_from(raw: Any) -> Usage | None:
    """Anthropic's input_tokens excludes cache reads and writes; ours includes both."""
    if not isinstance(raw, dict):
        return None
    cache_read = count(raw, "cache_read_input_tokens")
    cache_write = count(raw, "cache_creation_input_tokens")
    return Usage(
        input_tokens=count(raw, "input_tokens") + cache_read + cache_write,
        output_tokens=count(raw, "output_tokens"),
        cached_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def parse_response(body: Any) -> ParsedReply:
    text = "".join(block.get("text", "") for block in body["content"] if block.get("type") == "text")
    return ParsedReply(text, usage_from(body.get("usage")), body.get("model") or "", body.get("stop_reason"))


def error_kind(error_type: str | None) -> str:
    return ERROR_KINDS.get(error_type or "", "server")


class MessageStream(StreamAccumulator):
    """message_start, content blocks, message_delta (cumulative usage), message_stop."""

    terminator = "event: message_stop"

    def __init__(self) -> None:
        super().__init__()
        self.thinking: list[str] = []  # extended-thinking text: kept apart, never answer text
        self._raw_usage: dict[str, Any] = {}

    def feed(self, event_name: str, data: str) -> str:
        if not data.strip():
            return ""
        event = json.loads(data)
        handler = getattr(self, f"_on_{event.get('type') or event_name}", None)
        return (handler(event) or "") if handler else ""  # unknown event types are allowed by the API

    def _merge_usage(self, raw: Any) -> None:
        if isinstance(raw, dict):
            self._raw_usage.update({key: value for key, value in raw.items() if value is not None})
            self.usage = usage_from(self._raw_usage)

    def _on_message_start(self, event: dict[str, Any]) -> None:
        message = event["message"]
        self.model = message.get("model") or self.model
        self._merge_usage(message.get("usage"))

    def _on_content_block_start(self, event: dict[str, Any]) -> str:
        block = event.get("content_block") or {}
        return self._add(block.get("text", "")) if block.get("type") == "text" else ""

    def _on_content_block_delta(self, event: dict[str, Any]) -> str:
        delta = event["delta"]
        if delta.get("type") == "thinking_delta":
            self.thinking.append(delta.get("thinking", ""))
        return self._add(delta.get("text", "")) if delta.get("type") == "text_delta" else ""

    def _on_message_delta(self, event: dict[str, Any]) -> None:
        self.finish_reason = (event.get("delta") or {}).get("stop_reason") or self.finish_reason
        self._merge_usage(event.get("usage"))

    def _on_message_stop(self, event: dict[str, Any]) -> None:
        self._done = True

    def _on_error(self, event: dict[str, Any]) -> None:
        error = event.get("error") or {}
        raise ProviderError(error_message(event), kind=error_kind(error.get("type")))


WIRE = WireFormat("anthropic", build_call, parse_response, MessageStream, error_message)
