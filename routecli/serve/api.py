"""The OpenAI-compatible routes: POST /v1/chat/completions, GET /v1/models, GET /health.

`model` picks the route: "auto" (or none) lets the classifier decide, "tier:NAME" forces a
tier, "provider:model" a model. Every answer says what was decided and what it cost in
`x-routecli-*` headers; errors use OpenAI's error body so SDKs raise their usual exceptions.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator

from routecli import fastjson
from routecli.errors import BudgetError, ConfigError, ProviderError, RoutecliError, UsageError
from routecli.inputs import _request
from routecli.serve.http import HttpRequest, HttpResponse

if TYPE_CHECKING:
    from routecli.config import Config
    from routecli.domain import Decision, Request
    from routecli.engine import Outcome
    from routecli.serve.relay import Relay

FINISH = {"max_tokens": "length", "MAX_TOKENS": "length", "length": "length", "end_turn": "stop", "STOP": "stop",
          "stop_sequence": "stop", "tool_use": "tool_calls", "cached": "stop"}
_NOWHERE = Path("/nonexistent")  # image paths are never read from the server's disk (to_request drops them)
PROVIDER_STATUS = {"rate_limit": 429, "timeout": 504, "auth": 502, "not_found": 404, "bad_request": 400,
                   "context_window": 400, "refusal": 422, "open_circuit": 503}


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Api:
    def __init__(self, config: Config, relay: Relay) -> None:
        self.config, self.relay = config, relay
        self.members = dict(config.guards.serve.members)

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        caller, denied = self._caller(request)
        if denied is not None:
            return denied
        route = (request.method, request.path.rstrip("/") or "/")
        try:
            if route == ("POST", "/v1/chat/completions"):
                return await self._chat(request, caller)
            if route == ("GET", "/v1/models"):
                return _json(200, self._models())
            if route == ("GET", "/health"):
                return _json(200, {"status": "ok", "models": len(self.config.all_models())})
            if request.method == "GET" and (request.path.startswith("/routecli/") or request.path == "/openapi.json"):
                from routecli.serve.analytics_api import read_only

                if request.path.startswith("/routecli/"):  # these read the ledger: answers already sent count
                    await self.relay.flush()
                return await read_only(self.config, self.relay.store, request)
        except RoutecliError as exc:
            return error_response(exc)
        return _error(404, f"no route {request.method} {request.path}; routecli serves POST /v1/chat/completions, "
                           "GET /v1/models and GET /health", "not_found")

    def _caller(self, request: HttpRequest) -> tuple[str | None, HttpResponse | None]:
        """(member name, None), or (None, a 401) when keys are configured and this one is not among them."""
        if not self.members:
            return None, None
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        digest = key_digest(token.strip()) if scheme.lower() == "bearer" and token.strip() else ""
        for name, known in self.members.items():
            if digest and hmac.compare_digest(digest, known):
                return name, None
        return None, _error(401, "missing or unknown API key: pass a key from `routecli serve add-key NAME` "
                                 "as the bearer token", "invalid_api_key")

    def _models(self) -> dict[str, Any]:
        from routecli.routing import CLASSIFIERS

        ids = ["auto"] + [f"tier:{tier}" for tier in self.config.tier_order]
        ids += [f"router-{name}-0.5" for name in sorted(CLASSIFIERS)]
        ids += [str(ref) for _, ref in self.config.all_models()]
        seen = list(dict.fromkeys(ids))
        return {"object": "list", "data": [{"id": i, "object": "model", "created": 0, "owned_by": "routecli"}
                                           for i in seen]}

    async def _chat(self, http: HttpRequest, caller: str | None) -> HttpResponse:
        body = _body(http.body)
        request = to_request(body)
        decision = self.relay.decide(request)
        if body.get("stream"):
            return self._stream(request, decision, caller, body)
        outcome = await self.relay.answer(request, decision, caller=caller)
        return _json(200, completion(outcome), headers=decision_headers(outcome))

    def _stream(self, request: Request, decision: Decision, caller: str | None, body: dict) -> HttpResponse:
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        chat_id, created = f"chatcmpl-{int(time.time() * 1000)}", int(time.time())
        model = str(decision.model)

        async def run() -> Outcome:
            try:
                return await self.relay.answer(request, decision, caller=caller, on_text=queue.put_nowait)
            finally:
                queue.put_nowait(None)

        async def events() -> AsyncIterator[bytes]:
            task = asyncio.get_running_loop().create_task(run())
            yield _sse(_chunk(chat_id, created, model, {"role": "assistant", "content": ""}))
            while (delta := await queue.get()) is not None:
                yield _sse(_chunk(chat_id, created, model, {"content": delta}))
            try:
                outcome = await task
            except RoutecliError as exc:
                yield _sse(error_body(exc))
            else:
                last = _chunk(chat_id, created, str(outcome.decision.model), {}, _finish(outcome))
                if (body.get("stream_options") or {}).get("include_usage"):
                    last["usage"] = _usage(outcome)
                last["routecli"] = decision_json(outcome)
                yield _sse(last)
            yield b"data: [DONE]\n\n"

        headers = [("cache-control", "no-cache"), ("x-routecli-tier", decision.tier),
                   ("x-routecli-model", model), ("x-routecli-score", f"{decision.verdict.score:.4f}")]
        return HttpResponse(200, headers=headers, stream=events(), content_type="text/event-stream")


def to_request(body: dict[str, Any]) -> Request:
    """An OpenAI chat body as a routecli Request; `model` becomes the route."""
    fields = {k: v for k, v in body.items() if k not in ("image", "images", "model", "tier", "tags", "agent")}
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise UsageError('"model" must be a string: auto, tier:NAME or provider:model')
    if "max_tokens" not in fields and isinstance(body.get("max_completion_tokens"), int):
        fields["max_tokens"] = body["max_completion_tokens"]
    metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    fields["agent"] = metadata.get("agent") or body.get("user")
    fields["tags"] = [t for t in str(metadata.get("tags", "")).split(",") if t]
    if model and model.startswith("router-"):
        fields["router"] = model
    elif model and model != "auto":
        fields["tier" if model.startswith("tier:") else "model"] = model.removeprefix("tier:")
    return _request(fields, _NOWHERE)


def completion(outcome: Outcome) -> dict[str, Any]:
    reply = outcome.reply
    assert reply is not None
    return {
        "id": f"chatcmpl-{outcome.attempt_id}", "object": "chat.completion", "created": int(time.time()),
        "model": str(outcome.decision.model),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                     "finish_reason": _finish(outcome), "logprobs": None}],
        "usage": _usage(outcome), "routecli": decision_json(outcome),
    }


def decision_json(outcome: Outcome) -> dict[str, Any]:
    decision = outcome.decision
    return {"request_id": outcome.attempt_id, "tier": decision.tier, "model": str(decision.model),
            "score": round(decision.verdict.score, 4), "phase": decision.verdict.phase,
            "reasons": list(decision.verdict.reasons), "cost_usd": _money(outcome.cost),
            "baseline_cost_usd": _money(outcome.baseline_cost), "cache": outcome.cache_kind,
            "confidence": outcome.confidence, "history": outcome.history}


def decision_headers(outcome: Outcome) -> list[tuple[str, str]]:
    decision = outcome.decision
    return [("x-routecli-tier", decision.tier), ("x-routecli-model", str(decision.model)),
            ("x-routecli-score", f"{decision.verdict.score:.4f}"), ("x-routecli-phase", decision.verdict.phase),
            ("x-routecli-cost", _money(outcome.cost) or "unknown"), ("x-routecli-request-id", outcome.attempt_id),
            ("x-routecli-cache", outcome.cache_kind or "miss")]


def error_body(exc: RoutecliError) -> dict[str, Any]:
    kind = getattr(exc, "kind", None) or type(exc).__name__
    return {"error": {"message": str(exc), "type": "routecli_error", "code": kind}}


def error_response(exc: RoutecliError) -> HttpResponse:
    if isinstance(exc, ProviderError):
        status = PROVIDER_STATUS.get(exc.kind, 502)
    elif isinstance(exc, BudgetError):
        status = 429
    elif isinstance(exc, (UsageError,)) and not isinstance(exc, ConfigError):
        status = 400
    else:
        status = 500 if not isinstance(exc, ConfigError) else 503
    return _json(status, error_body(exc))


def _body(raw: bytes) -> dict[str, Any]:
    try:
        body = fastjson.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise UsageError("the request body is not JSON; send an OpenAI chat completions body") from None
    if not isinstance(body, dict):
        raise UsageError("the request body must be a JSON object with messages")
    if "messages" not in body:
        raise UsageError('the request needs "messages", as in OpenAI\'s chat completions API')
    return body


def _usage(outcome: Outcome) -> dict[str, int] | None:
    usage = outcome.reply.usage if outcome.reply else None
    if usage is None:
        return None
    return {"prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens,
            "total_tokens": usage.input_tokens + usage.output_tokens}


def _finish(outcome: Outcome) -> str:
    reason = outcome.reply.finish_reason if outcome.reply else None
    return FINISH.get(reason or "", reason or "stop")


def _chunk(chat_id: str, created: int, model: str, delta: dict, finish: str | None = None) -> dict[str, Any]:
    return {"id": chat_id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}


def _sse(data: dict) -> bytes:
    return b"data: " + fastjson.dumps(data) + b"\n\n"


def _money(value: Any) -> str | None:
    return None if value is None else str(value)


def _json(status: int, body: dict, headers: list[tuple[str, str]] | None = None) -> HttpResponse:
    return HttpResponse(status, fastjson.dumps(body), headers or [])


def _error(status: int, message: str, code: str) -> HttpResponse:
    return _json(status, {"error": {"message": message, "type": "invalid_request_error", "code": code}})
