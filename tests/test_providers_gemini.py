"""Gemini generateContent wire format. Payloads follow the Gemini API reference
(GenerateContentResponse, usageMetadata, promptFeedback, google.rpc error bodies); HTTP is mocked."""

from __future__ import annotations

from routecli.domain import Image, Message, Request, Usage
from routecli.errors import ProviderError
from routecli.providers import gemini
from mockvendor import (
    config, error_from, feed_all, json_response, mock_provider, sent_json,
    sse_response, user,
)

KEY = "AIzaSyD-SECRETSECRETSECRET"
BASE = "https://generativelanguage.googleapis.com/v1beta"
CFG = config("gemini", BASE, api_key_env="GEMINI_API_KEY")
PNG = Image(media_type="image/png", data="iVBORw0KGgo=")

RESPONSE = {
    "candidates": [{
        "content": {"parts": [{"text": "**Thinking about cats**", "thought": True},
                              {"text": "Cats purr"}, {"text": " when content."}], "role": "model"},
        "finishReason": "STOP",
        "index": 0,
        "avgLogprobs": -0.21,
    }],
    "usageMetadata": {"promptTokenCount": 1200, "candidatesTokenCount": 6, "totalTokenCount": 1306,
                      "cachedContentTokenCount": 1024, "thoughtsTokenCount": 100,
                      "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 1200}]},
    "modelVersion": "gemini-2.5-flash",
    "responseId": "mfRuaKb4Ku3T0g",
}


def chunk(text: str, *, finish: str | None = None, out: int = 1) -> tuple[None, dict]:
    candidate = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return None, {"candidates": [candidate], "modelVersion": "gemini-2.5-flash", "responseId": "r1",
                  "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": out, "totalTokenCount": 8 + out}}


TRANSCRIPT = [chunk("The"), chunk(" sky is", out=3), chunk(" blue.", finish="STOP", out=5)]


def provider_for(respond):
    return mock_provider(CFG, respond, api_key=KEY)


def fail(respond, *, stream: bool = False) -> ProviderError:
    return error_from(provider_for(respond)[0], user("Why is the sky blue?"), "gemini-2.5-flash", stream=stream)


def test_build_call_maps_roles_system_config_and_images():
    request = Request(messages=(Message("user", "What is it?", (PNG,)), Message("assistant", "A map."),
                                Message("user", "Of where?")), system="Answer in French.", max_tokens=100,
                      temperature=0.5)
    call = gemini.build_call(request, "models/gemini-2.5-flash", stream=False, base_url=BASE + "/", api_key=KEY,
                             default_max_tokens=4096)
    assert call.url == f"{BASE}/models/gemini-2.5-flash:generateContent"
    assert call.headers["x-goog-api-key"] == KEY and KEY not in call.url
    assert call.json == {
        "contents": [
            {"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                                       {"text": "What is it?"}]},
            {"role": "model", "parts": [{"text": "A map."}]},
            {"role": "user", "parts": [{"text": "Of where?"}]},
        ],
        "systemInstruction": {"parts": [{"text": "Answer in French."}]},
        "generationConfig": {"maxOutputTokens": 100, "temperature": 0.5},
    }


def test_build_call_streaming_url_and_bare_body():
    call = gemini.build_call(user("Why is the sky blue?"), "gemini-2.5-flash", stream=True, base_url=BASE, api_key=None,
                             default_max_tokens=4096)
    assert call.url == f"{BASE}/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert set(call.json) == {"contents"} and "x-goog-api-key" not in call.headers


def test_parse_response_skips_thoughts_and_counts_them_as_output():
    parsed = gemini.parse_response(RESPONSE)
    assert parsed.text == "Cats purr when content."
    assert (parsed.model, parsed.finish_reason) == ("gemini-2.5-flash", "STOP")
    assert parsed.usage == Usage(input_tokens=1200, output_tokens=106, cached_tokens=1024, reasoning_tokens=100)


def test_blocked_prompt_is_a_clear_refusal():
    body = {"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}]},
            "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}, "modelVersion": "gemini-2.5-flash"}
    error = fail(json_response(body))
    assert error.kind == "refusal"
    assert error.message == ("gemini blocked the prompt: rephrase it or pick another provider with --model "
                             "(gemini said: prompt blocked, blockReason SAFETY)")


def test_no_candidates_is_a_bad_request():
    error = fail(json_response({"usageMetadata": {"promptTokenCount": 3}}))
    assert error.kind == "bad_request" and "no candidates" in error.message


def test_stream_state_ends_at_finish_reason():
    state = gemini.GenerateStream()
    assert feed_all(state, TRANSCRIPT) == ["The", " sky is", " blue."] and state.done
    assert state.result().usage == Usage(input_tokens=8, output_tokens=5)


def test_complete_streaming():
    provider, seen = provider_for(sse_response(TRANSCRIPT))
    got: list[str] = []
    reply = provider.complete(user("Why?", system="Short answers."), "gemini-2.5-flash", on_text=got.append)
    assert got == ["The", " sky is", " blue."] and reply.text == "The sky is blue."
    assert reply.finish_reason == "STOP" and reply.model == "gemini-2.5-flash"
    assert seen[0].url.params["alt"] == "sse" and seen[0].headers["x-goog-api-key"] == KEY
    assert sent_json(seen[0])["systemInstruction"] == {"parts": [{"text": "Short answers."}]}


def test_complete_without_streaming():
    provider, seen = provider_for(json_response(RESPONSE))
    got: list[str] = []
    reply = provider.complete(user("Why is the sky blue?"), "gemini-2.5-flash", stream=False, on_text=got.append)
    assert got == ["Cats purr when content."] and reply.usage.reasoning_tokens == 100
    assert seen[0].url.path == "/v1beta/models/gemini-2.5-flash:generateContent"


def test_stream_without_finish_reason_is_cut():
    error = fail(sse_response(TRANSCRIPT[:2]), stream=True)
    assert error.kind == "stream_cut" and "finishReason" in error.message


def test_blocked_prompt_mid_stream():
    blocked = (None, {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}})
    assert fail(sse_response([blocked]), stream=True).kind == "refusal"


def test_bad_key_400_is_an_auth_error():
    body = {"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                      "status": "INVALID_ARGUMENT", "details": [
                          {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                           "domain": "googleapis.com",
                           "metadata": {"service": "generativelanguage.googleapis.com"}}]}}
    error = fail(json_response(body, 400))
    assert error.kind == "auth" and error.status == 400
    assert "check GEMINI_API_KEY or run `routecli keys set gemini`" in error.message


def test_429_takes_the_wait_from_retry_info():
    body = {"error": {"code": 429, "message": "You exceeded your current quota.", "status": "RESOURCE_EXHAUSTED",
                      "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
                                  {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "38s"}]}}
    error = fail(json_response(body, 429))
    assert (error.kind, error.retry_after) == ("rate_limit", 38.0)
    assert "retry after 38 s" in error.message
    assert fail(json_response(body, 429, {"retry-after": "5"})).retry_after == 5.0  # the header wins


def test_404_and_503():
    not_found = {"error": {"code": 404, "message": "models/gemini-9 is not found for API version v1beta",
                           "status": "NOT_FOUND"}}
    assert fail(json_response(not_found, 404)).kind == "not_found"
    unavailable = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    error = fail(json_response(unavailable, 503))
    assert error.kind == "server" and "The model is overloaded." in error.message


def test_input_too_long():
    body = {"error": {"code": 400, "status": "INVALID_ARGUMENT",
                      "message": "The input token count (1200000) exceeds the maximum number of tokens "
                                 "allowed (1048576)."}}
    error = fail(json_response(body, 400))
    assert error.kind == "context_window" and "too long for gemini:gemini-2.5-flash" in error.message
