"""OpenAI chat-completions wire format, plus the shared base behaviour it exercises.

Payloads follow the shapes in OpenAI's API reference (chat completion object, chunk
object, error object); all HTTP goes through httpx.MockTransport.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from routecli.domain import Image, Message, Request, Usage
from routecli.errors import ConfigError, ProviderError
from routecli.providers import WIRE_FORMATS, get_provider, make_client, openai
from routecli.providers.base import error_message, kind_for_status, one_line, parse_retry_after
from mockvendor import (
    config, error_from, feed_all, json_response, mock_client, mock_provider, raising, sent_json, sse_response, user,
)

KEY = "sk-proj-SECRET0123456789"
CFG = config("openai", "https://api.openai.com/v1", api_key_env="OPENAI_API_KEY")
LOCAL = config("openai", "http://localhost:11434/v1", name="ollama", api_key_env=None)
PNG = Image(media_type="image/png", data="iVBORw0KGgo=", source="cat.png")

# The chat completion object, as in the API reference (cached/reasoning made non-zero).
COMPLETION = {
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    "object": "chat.completion",
    "created": 1741569952,
    "model": "gpt-4.1-2025-04-14",
    "choices": [{
        "index": 0,
        "message": {"role": "assistant", "content": "Hello! How can I assist you today?",
                    "refusal": None, "annotations": []},
        "logprobs": None,
        "finish_reason": "stop",
    }],
    "usage": {
        "prompt_tokens": 1919, "completion_tokens": 210, "total_tokens": 2129,
        "prompt_tokens_details": {"cached_tokens": 1792, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 192, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    },
    "service_tier": "default",
}


def chunk(delta: dict, finish: str | None = None, *, choices: list | None = None, usage: dict | None = None) -> dict:
    base = {"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1694268190,
            "model": "gpt-4o-mini", "system_fingerprint": "fp_44709d6fcb", "usage": usage}
    base["choices"] = choices if choices is not None else [
        {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    return base


# A streamed completion with stream_options.include_usage, ending in the usage chunk and [DONE].
TRANSCRIPT = [
    (None, chunk({"role": "assistant", "content": ""})),
    (None, chunk({"content": "Hello"})),
    (None, chunk({"content": " there"})),
    (None, chunk({}, "stop")),
    (None, chunk({}, choices=[], usage={"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11,
                                        "prompt_tokens_details": {"cached_tokens": 4},
                                        "completion_tokens_details": {"reasoning_tokens": 0}})),
    (None, "[DONE]"),
]


def provider_for(respond, cfg=CFG, key: str | None = KEY):
    return mock_provider(cfg, respond, api_key=key)


def fail(respond, *, stream: bool = False, cfg=CFG) -> ProviderError:
    return error_from(provider_for(respond, cfg)[0], user("Say hi"), "gpt-5.4-mini", stream=stream)


# ---------------------------------------------------------------- build_call


def test_build_call_puts_system_first_and_keeps_turns_and_images():
    request = Request(
        messages=(Message("user", "What is this?", (PNG,)), Message("assistant", "A cat."), Message("user", "Sure?")),
        system="Be brief.", temperature=0.2, max_tokens=50,
    )
    call = openai.build_call(request, "gpt-5.4-mini", stream=False, base_url="https://api.openai.com/v1/",
                             api_key=KEY, default_max_tokens=4096)
    assert call.method == "POST"
    assert call.url == "https://api.openai.com/v1/chat/completions"
    assert call.headers["authorization"] == f"Bearer {KEY}"
    assert call.json == {
        "model": "gpt-5.4-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ]},
            {"role": "assistant", "content": "A cat."},
            {"role": "user", "content": "Sure?"},
        ],
        "max_completion_tokens": 50,
        "temperature": 0.2,
    }


def test_build_call_for_compatible_servers_sends_max_tokens_and_no_auth_without_key():
    call = openai.build_call(user("Say hi", max_tokens=7), "llama3.2", stream=True, base_url=LOCAL.base_url,
                             api_key=None, default_max_tokens=4096)
    assert call.url == "http://localhost:11434/v1/chat/completions"
    assert "authorization" not in {name.lower() for name in call.headers}
    assert call.json["max_tokens"] == 7 and "max_completion_tokens" not in call.json
    assert call.json["stream"] is True
    assert call.json["stream_options"] == {"include_usage": True}
    assert call.headers["accept"] == "text/event-stream"


def test_build_call_leaves_out_unset_options():
    call = openai.build_call(user("Say hi"), "m", stream=False, base_url=LOCAL.base_url, api_key=None,
                             default_max_tokens=99)
    assert set(call.json) == {"model", "messages"}


# ---------------------------------------------------------------- parsing


def test_parse_response_normalises_usage():
    parsed = openai.parse_response(COMPLETION)
    assert parsed.text == "Hello! How can I assist you today?"
    assert parsed.model == "gpt-4.1-2025-04-14"
    assert parsed.finish_reason == "stop"
    assert parsed.usage == Usage(input_tokens=1919, output_tokens=210, cached_tokens=1792, reasoning_tokens=192)


def test_parse_response_without_usage_gives_none():
    body = {**COMPLETION, "usage": None}
    assert openai.parse_response(body).usage is None


def test_stream_state_collects_deltas_and_final_usage():
    state = openai.ChatStream()
    assert feed_all(state, TRANSCRIPT) == ["", "Hello", " there", "", "", ""]
    assert state.done
    result = state.result()
    assert (result.text, result.model, result.finish_reason) == ("Hello there", "gpt-4o-mini", "stop")
    assert result.usage == Usage(input_tokens=9, output_tokens=2, cached_tokens=4)


def test_stream_state_without_done_is_a_cut_stream():
    state = openai.ChatStream()
    feed_all(state, TRANSCRIPT[:3])
    assert not state.done
    with pytest.raises(ProviderError) as caught:
        state.result()
    assert caught.value.kind == "stream_cut"


def test_stream_state_maps_an_in_stream_error():
    state = openai.ChatStream()
    with pytest.raises(ProviderError) as caught:
        state.feed("message", json.dumps({"error": {"message": "Provider returned error", "code": 502}}))
    assert (caught.value.kind, caught.value.message) == ("server", "Provider returned error")


# ---------------------------------------------------------------- complete()


def test_complete_without_streaming_calls_on_text_once_and_times_it():
    provider, seen = provider_for(json_response(COMPLETION))
    got: list[str] = []
    reply = provider.complete(user("Say hi", system="Be brief."), "gpt-4.1", stream=False, on_text=got.append)
    assert got == ["Hello! How can I assist you today?"]
    assert reply.text == got[0] and reply.model == "gpt-4.1-2025-04-14"
    assert reply.usage.cached_tokens == 1792
    assert reply.ttft_ms is None and reply.latency_ms > 0
    assert provider.name == "openai"
    assert seen[0].headers["authorization"] == f"Bearer {KEY}"
    assert sent_json(seen[0])["messages"][0] == {"role": "system", "content": "Be brief."}


def test_complete_streaming_reports_deltas_and_ttft():
    provider, seen = provider_for(sse_response(TRANSCRIPT))
    got: list[str] = []
    reply = provider.complete(user("Say hi"), "gpt-4o-mini", on_text=got.append)
    assert got == ["Hello", " there"]
    assert reply.text == "Hello there" and reply.usage.input_tokens == 9
    assert reply.ttft_ms is not None and 0 < reply.ttft_ms <= reply.latency_ms
    assert sent_json(seen[0])["stream"] is True


def test_complete_streaming_accepts_a_plain_json_answer():
    provider, _ = provider_for(json_response(COMPLETION))
    got: list[str] = []
    reply = provider.complete(user("Say hi"), "m", on_text=got.append)
    assert reply.text == got[0] == COMPLETION["choices"][0]["message"]["content"]
    assert reply.ttft_ms is not None


def test_reply_model_falls_back_to_the_requested_one():
    provider, _ = provider_for(json_response({**COMPLETION, "model": None}), LOCAL, None)
    assert provider.complete(user("Say hi"), "llama3.2", stream=False).model == "llama3.2"


def test_stream_without_done_raises_stream_cut():
    error = fail(sse_response(TRANSCRIPT[:3]), stream=True)
    assert error.kind == "stream_cut" and error.provider == "openai" and error.model == "gpt-5.4-mini"
    assert "[DONE]" in error.message


def test_stream_broken_mid_body_is_a_cut_stream():
    class Broken(httpx.SyncByteStream):
        def __iter__(self):
            yield b'data: {"choices": [{"index": 0, "delta": {"content": "Hi"}}]}\n\n'
            raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")

    def respond(request):
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Broken())

    got: list[str] = []
    provider, _ = provider_for(respond)
    with pytest.raises(ProviderError) as caught:
        provider.complete(user("Say hi"), "m", on_text=got.append)
    assert caught.value.kind == "stream_cut" and got == ["Hi"]


# ---------------------------------------------------------------- errors


def test_401_names_the_env_var_and_never_the_key():
    body = {"error": {"message": f"Incorrect API key provided: {KEY}. You can find your API key at "
                                 "https://platform.openai.com/account/api-keys.",
                      "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}
    error = fail(json_response(body, 401))
    assert error.kind == "auth" and error.status == 401
    assert error.message.startswith(
        "openai rejected the API key (HTTP 401): check OPENAI_API_KEY or run `routecli keys set openai`")
    assert "Incorrect API key provided: ***" in error.message
    assert KEY not in error.message and KEY not in str(error)
    assert "\n" not in error.message


def test_404_points_at_the_model_id_and_base_url():
    body = {"error": {"message": "The model `gpt-9` does not exist or you do not have access to it.",
                      "type": "invalid_request_error", "param": None, "code": "model_not_found"}}
    error = fail(json_response(body, 404))
    assert error.kind == "not_found"
    assert "model id in the tier config" in error.message and "https://api.openai.com/v1" in error.message
    assert "The model `gpt-9` does not exist" in error.message


@pytest.mark.parametrize("headers, wait", [
    ({"retry-after": "7"}, 7.0),
    ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
    ({}, None),
])
def test_429_carries_retry_after(headers, wait):
    body = {"error": {"message": "Rate limit reached for requests", "type": "requests", "code": "rate_limit_exceeded"}}
    error = fail(json_response(body, 429, headers))
    assert (error.kind, error.retry_after) == ("rate_limit", wait)
    assert ("retry after " + f"{wait:g} s" if wait else "wait and retry") in error.message


def test_5xx_suggests_another_tier():
    error = fail(json_response({"error": {"message": "The server had an error", "type": "server_error"}}, 503))
    assert (error.kind, error.status) == ("server", 503)
    assert "try again later or pick another tier with --tier" in error.message


def test_context_too_long_is_a_context_window_error_saying_so():
    body = {"error": {"message": "This model's maximum context length is 128000 tokens. However, your messages "
                                 "resulted in 130532 tokens. Please reduce the length of the messages.",
                      "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}
    error = fail(json_response(body, 400))
    assert error.kind == "context_window"
    assert "the prompt is too long for openai:gpt-5.4-mini" in error.message


def test_other_400_is_a_plain_bad_request():
    body = {"error": {"message": "Invalid value for 'temperature'", "type": "invalid_request_error"}}
    error = fail(json_response(body, 400))
    assert error.kind == "bad_request" and "too long" not in error.message
    assert "Invalid value for 'temperature'" in error.message


def test_vendor_text_is_truncated_to_one_line():
    error = fail(json_response({"error": {"message": "line one\nline two " + "x" * 500}}, 400))
    assert "\n" not in error.message and "line one line two" in error.message
    assert len(error.message) < 450


def test_non_json_error_body_is_quoted_raw():
    error = fail(lambda request: httpx.Response(502, text="<html>Bad Gateway</html>"))
    assert error.kind == "server" and "<html>Bad Gateway</html>" in error.message


def test_timeout_names_read_timeout():
    error = fail(raising(httpx.ReadTimeout))
    assert error.kind == "timeout"
    assert "no answer within 5 s" in error.message and "read_timeout in [providers.openai]" in error.message


def test_connect_timeout_names_connect_timeout():
    error = fail(raising(httpx.ConnectTimeout))
    assert error.kind == "timeout" and "within 2 s" in error.message and "connect_timeout" in error.message


def test_connection_refused_names_base_url():
    error = fail(raising(httpx.ConnectError, "[Errno 111] Connection refused"), cfg=LOCAL)
    assert error.kind == "connection"
    assert error.message == ("cannot connect to http://localhost:11434/v1: is the server running? "
                             "check base_url in [providers.ollama]")


@pytest.mark.parametrize("stream", [False, True])
def test_malformed_body(stream):
    broken = httpx.Response(200, text='{"choices": [', headers={"content-type": "application/json"})
    error = fail(lambda request: broken, stream=stream)
    assert error.kind == "malformed" and "points at an API of kind 'openai' (JSONDecodeError" in error.message


def test_malformed_shape_is_malformed_too():
    assert fail(json_response({"choices": []})).kind == "malformed"


def test_malformed_sse_data():
    assert fail(sse_response([(None, "{nope")]), stream=True).kind == "malformed"


# ---------------------------------------------------------------- shared helpers


def test_retry_after_http_date():
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    headers = httpx.Headers({"Retry-After": format_datetime(now + timedelta(seconds=30), usegmt=True)})
    assert parse_retry_after(headers, now=now) == 30.0
    assert parse_retry_after(httpx.Headers({"Retry-After": "soon"})) is None
    assert parse_retry_after(httpx.Headers({"Retry-After": "-3"})) == 0.0


@pytest.mark.parametrize("status, kind", [
    (400, "bad_request"), (401, "auth"), (403, "auth"), (404, "not_found"), (408, "timeout"),
    (413, "bad_request"), (422, "bad_request"), (429, "rate_limit"), (500, "server"), (529, "server"),
])
def test_kind_for_status(status, kind):
    assert kind_for_status(status) == kind


@pytest.mark.parametrize("body, text", [
    ({"error": {"message": "m1"}}, "m1"),
    ({"error": "model 'x' not found, try pulling it first"}, "model 'x' not found, try pulling it first"),
    ({"detail": "Not Found"}, "Not Found"),
    ([{"error": {"code": 400, "message": "m2"}}], "m2"),
    ("plain", "plain"),
])
def test_error_message_variants(body, text):
    assert error_message(body) == text


def test_one_line():
    assert one_line("a\n  b\tc") == "a b c"
    assert one_line("x" * 300) == "x" * 199 + "…"


def test_registry_and_unknown_kind():
    assert set(WIRE_FORMATS) == {"openai", "anthropic", "gemini"}
    client, _ = mock_client(json_response({}))
    with pytest.raises(ConfigError, match=r"\[providers.odd\] has kind 'cohere'"):
        get_provider(config("cohere", "https://x", name="odd"), api_key=None, client=client)


def test_make_client_takes_timeouts_from_config():
    with make_client(config("openai", "https://x", read_timeout=33, connect_timeout=4)) as client:
        assert (client.timeout.read, client.timeout.connect) == (33, 4)
        assert client.headers["user-agent"].startswith("routecli/")


def test_repr_hides_the_key():
    provider, _ = provider_for(json_response(COMPLETION))
    assert KEY not in repr(provider) and KEY not in repr(vars(provider).get("cfg"))


def test_import_stays_light():
    code = ("import sys, routecli.providers; heavy = {'sqlalchemy', 'sqlmodel', 'rich', 'typer'}; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
