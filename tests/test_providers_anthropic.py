"""Anthropic messages wire format. Payloads follow the Messages API reference and its
streaming guide (event names, data shapes, the `event: error` example); HTTP is mocked."""

from __future__ import annotations

import json

import pytest

from routecli.domain import Image, Message, Request, Usage
from routecli.errors import ProviderError
from routecli.providers import anthropic
from mockvendor import (
    config, error_from, feed_all, json_response, mock_provider, sent_json,
    sse_response, user,
)

KEY = "sk-ant-api03-SECRETSECRET"
CFG = config("anthropic", "https://api.anthropic.com/v1", api_key_env="ANTHROPIC_API_KEY")
JPEG = Image(media_type="image/jpeg", data="/9j/4AAQSkZJRg==")

MESSAGE = {
    "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [
        {"type": "thinking", "thinking": "The user greets me.", "signature": "EqQBCgIYAhIM"},
        {"type": "text", "text": "Hi! My name is Claude."},
    ],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 2095, "cache_creation_input_tokens": 300, "cache_read_input_tokens": 1800,
              "output_tokens": 503, "service_tier": "standard"},
}


def event(name: str, **data) -> tuple[str, dict]:
    return name, {"type": name, **data}


# The streaming guide's basic transcript, with an extended-thinking block in front.
TRANSCRIPT = [
    event("message_start", message={
        "id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "type": "message", "role": "assistant", "content": [],
        "model": "claude-opus-4-6", "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 25, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 0,
                  "output_tokens": 1}}),
    event("content_block_start", index=0, content_block={"type": "thinking", "thinking": ""}),
    event("content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": "Let me think..."}),
    event("content_block_delta", index=0, delta={"type": "signature_delta", "signature": "EqQBCgIYAhIM"}),
    event("content_block_stop", index=0),
    event("content_block_start", index=1, content_block={"type": "text", "text": ""}),
    event("ping"),
    event("content_block_delta", index=1, delta={"type": "text_delta", "text": "Hello"}),
    event("content_block_delta", index=1, delta={"type": "text_delta", "text": "!"}),
    event("content_block_stop", index=1),
    event("message_delta", delta={"stop_reason": "end_turn", "stop_sequence": None}, usage={"output_tokens": 15}),
    event("message_stop"),
]


def provider_for(respond):
    return mock_provider(CFG, respond, api_key=KEY)


def fail(respond, *, stream: bool = False) -> ProviderError:
    return error_from(provider_for(respond)[0], user("Hello, Claude"), "claude-haiku-4-5", stream=stream)


def test_build_call_uses_top_level_system_and_anthropic_headers():
    request = Request(messages=(Message("user", "Describe it", (JPEG,)), Message("assistant", "A dog."),
                                Message("user", "Breed?")), system="You are terse.", temperature=0.0)
    call = anthropic.build_call(request, "claude-haiku-4-5", stream=True, base_url="https://api.anthropic.com/v1",
                                api_key=KEY, default_max_tokens=4096)
    assert call.url == "https://api.anthropic.com/v1/messages"
    assert call.headers["x-api-key"] == KEY and call.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in call.headers
    assert call.json == {
        "model": "claude-haiku-4-5",
        "max_tokens": 4096,
        "system": "You are terse.",
        "temperature": 0.0,
        "stream": True,
        "messages": [
            {"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQSkZJRg=="}},
                {"type": "text", "text": "Describe it"},
            ]},
            {"role": "assistant", "content": "A dog."},
            {"role": "user", "content": "Breed?"},
        ],
    }


def test_build_call_prefers_the_request_max_tokens():
    call = anthropic.build_call(user("Hi", max_tokens=64), "m", stream=False, base_url="http://h/v1/", api_key=None,
                                default_max_tokens=4096)
    assert call.json["max_tokens"] == 64 and "stream" not in call.json and "system" not in call.json
    assert call.url == "http://h/v1/messages" and "x-api-key" not in call.headers


def test_parse_response_skips_thinking_and_counts_cache_as_input():
    parsed = anthropic.parse_response(MESSAGE)
    assert parsed.text == "Hi! My name is Claude."
    assert (parsed.model, parsed.finish_reason) == ("claude-sonnet-4-5-20250929", "end_turn")
    assert parsed.usage == Usage(input_tokens=2095 + 300 + 1800, output_tokens=503,
                                 cached_tokens=1800, cache_write_tokens=300)


def test_stream_state_follows_the_documented_transcript():
    state = anthropic.MessageStream()
    assert [delta for delta in feed_all(state, TRANSCRIPT) if delta] == ["Hello", "!"]
    assert state.thinking == ["Let me think..."]
    assert state.done
    result = state.result()
    assert (result.text, result.model, result.finish_reason) == ("Hello!", "claude-opus-4-6", "end_turn")
    assert result.usage == Usage(input_tokens=125, output_tokens=15, cached_tokens=100)


def test_stream_state_ignores_unknown_events():
    state = anthropic.MessageStream()
    assert state.feed("future_event", json.dumps({"type": "future_event", "x": 1})) == ""
    assert state.feed("ping", "") == ""


def test_stream_state_takes_cumulative_input_from_message_delta():
    state = anthropic.MessageStream()
    state.feed("message_start", json.dumps(TRANSCRIPT[0][1]))
    state.feed("message_delta", json.dumps({"type": "message_delta", "delta": {"stop_reason": "max_tokens"},
                                            "usage": {"input_tokens": 30, "output_tokens": 4}}))
    assert state.usage == Usage(input_tokens=130, output_tokens=4, cached_tokens=100)
    assert state.finish_reason == "max_tokens"


def test_complete_streaming_emits_only_answer_text():
    provider, seen = provider_for(sse_response(TRANSCRIPT))
    got: list[str] = []
    reply = provider.complete(user("Hi", system="Be nice."), "claude-opus-4-6", on_text=got.append)
    assert got == ["Hello", "!"] and reply.text == "Hello!"
    assert reply.usage.output_tokens == 15 and reply.ttft_ms is not None
    body = sent_json(seen[0])
    assert body["system"] == "Be nice." and all(m["role"] != "system" for m in body["messages"])
    assert seen[0].headers["x-api-key"] == KEY and seen[0].url.path == "/v1/messages"


def test_complete_without_streaming():
    provider, _ = provider_for(json_response(MESSAGE))
    got: list[str] = []
    reply = provider.complete(user("Hello, Claude"), "claude-sonnet-4-5", stream=False, on_text=got.append)
    assert got == ["Hi! My name is Claude."] and reply.usage.cached_tokens == 1800


def test_in_stream_overloaded_error_is_a_server_error():
    error_event = ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    error = fail(sse_response(TRANSCRIPT[:3] + [error_event]), stream=True)
    assert error.kind == "server" and error.provider == "anthropic"
    assert "(anthropic said: Overloaded)" in error.message


def test_stream_without_message_stop_is_cut():
    error = fail(sse_response(TRANSCRIPT[:-1]), stream=True)
    assert error.kind == "stream_cut" and "message_stop" in error.message


@pytest.mark.parametrize("status, error_type, kind", [
    (401, "authentication_error", "auth"),
    (403, "permission_error", "auth"),
    (404, "not_found_error", "not_found"),
    (429, "rate_limit_error", "rate_limit"),
    (500, "api_error", "server"),
    (529, "overloaded_error", "server"),
])
def test_error_bodies(status, error_type, kind):
    body = {"type": "error", "error": {"type": error_type, "message": f"msg for {error_type}"},
            "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"}
    error = fail(json_response(body, status))
    assert (error.kind, error.status) == (kind, status)
    assert f"msg for {error_type}" in error.message


def test_auth_error_names_anthropic_key_env():
    body = {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}
    error = fail(json_response(body, 401))
    assert "check ANTHROPIC_API_KEY or run `routecli keys set anthropic`" in error.message
    assert KEY not in error.message


def test_prompt_too_long():
    body = {"type": "error", "error": {"type": "invalid_request_error",
                                       "message": "prompt is too long: 215000 tokens > 200000 maximum"}}
    error = fail(json_response(body, 400))
    assert error.kind == "context_window" and "the prompt is too long for anthropic:claude-haiku-4-5" in error.message
    assert "215000 tokens > 200000 maximum" in error.message
