"""The Gemini generateContent wire format (REST, v1beta): pure build and parse functions, no I/O."""

from __future__ import annotations

import json
import re
from typing import Any

from routecli.domain import Message, Request, Usage
from routecli.errors import ProviderError
from routecli.providers.base import HttpCall, ParsedReply, StreamAccumulator, WireFormat
from routecli.providers.base import count, error_message, json_headers, kind_for_status

ROLES = {"user": "user", "assistant": "model"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")  # google.protobuf.Duration in JSON: "2s", "1.5s"


def build_call(request: Request, model: str, *, stream: bool, base_url: str,
               api_key: str | None, default_max_tokens: int) -> HttpCall:
    """default_max_tokens is unused: Gemini has its own default when maxOutputTokens is absent."""
    action = "streamGenerateContent?alt=sse" if stream else "generateContent"
    url = f"{base_url.rstrip('/')}/models/{model.removeprefix('models/')}:{action}"
    body: dict[str, Any] = {"contents": [_content(message) for message in request.messages]}
    if request.system:
        body["systemInstruction"] = {"parts": [{"text": request.system}]}
    config: dict[str, Any] = {}
    if request.max_tokens is not None:
        config["maxOutputTokens"] = request.max_tokens
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if config:
        body["generationConfig"] = config
    headers = json_headers(stream)
    if api_key:
        headers["x-goog-api-key"] = api_key  # a header, not ?key=, so the key never lands in a URL or log
    return HttpCall("POST", url, headers, body, stream)


def _content(message: Message) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [
        {"inlineData": {"mimeType": image.media_type, "data": image.data}} for image in message.images
    ]
    if message.text or not parts:
        parts.append({"text": message.text})
    return {"role": ROLES.get(message.role, message.role), "parts": parts}


def usage_from(raw: Any) -> Usage | None:
    """promptTokenCount already includes cached tokens; thoughts are billed as output."""
    if not isinstance(raw, dict):
        return None
    thoughts = count(raw, "thoughtsTokenCount")
    return Usage(
        input_tokens=count(raw, "promptTokenCount"),
        output_tokens=count(raw, "candidatesTokenCount") + thoughts,
        cached_tokens=count(raw, "cachedContentTokenCount"),
        reasoning_tokens=thoughts,
    )


def _raise_if_blocked(body: dict[str, Any]) -> None:
    reason = (body.get("promptFeedback") or {}).get("blockReason")
    if reason:
        raise ProviderError(f"prompt blocked, blockReason {reason}", kind="refusal")


def _answer_text(candidate: dict[str, Any]) -> str:
    parts = (candidate.get("content") or {}).get("parts") or ()
    return "".join(part.get("text", "") for part in parts if not part.get("thought"))


def parse_response(body: Any) -> ParsedReply:
    _raise_if_blocked(body)
    if not body.get("candidates"):
        raise ProviderError("no candidates in the answer, so it was probably blocked", kind="bad_request")
    candidate = body["candidates"][0]
    return ParsedReply(
        _answer_text(candidate), usage_from(body.get("usageMetadata")),
        body.get("modelVersion") or "", candidate.get("finishReason"),
    )


def error_hints(status: int, body: Any) -> tuple[str | None, float | None]:
    """Gemini answers a bad key with 400 API_KEY_INVALID and puts the wait in RetryInfo."""
    error = (body[0] if isinstance(body, list) and body else body or {}).get("error") or {}
    kind, wait = None, None
    for detail in error.get("details") or ():
        if detail.get("reason") == "API_KEY_INVALID":
            kind = "auth"
        match = _DURATION.match(str(detail.get("retryDelay", "")))
        if match:
            wait = float(match.group(1))
    if "API key not valid" in str(error.get("message", "")):
        kind = "auth"
    return kind, wait


class GenerateStream(StreamAccumulator):
    """`data: {GenerateContentResponse}` chunks; the one carrying finishReason is the last."""

    terminator = "a chunk with finishReason"

    def feed(self, event_name: str, data: str) -> str:
        if not data.strip():
            return ""
        chunk = json.loads(data)
        if chunk.get("error"):
            code = chunk["error"].get("code")
            raise ProviderError(error_message(chunk), kind=kind_for_status(code) if isinstance(code, int) else "server")
        _raise_if_blocked(chunk)
        self.model = chunk.get("modelVersion") or self.model
        if chunk.get("usageMetadata"):
            self.usage = usage_from(chunk["usageMetadata"])  # cumulative: the last one wins
        candidates = chunk.get("candidates") or ()
        if not candidates:
            return ""
        if candidates[0].get("finishReason"):
            self.finish_reason = candidates[0]["finishReason"]
            self._done = True
        return self._add(_answer_text(candidates[0]))


WIRE = WireFormat("gemini", build_call, parse_response, GenerateStream, error_message, error_hints)
