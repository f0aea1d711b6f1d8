"""What every wire format shares: the value types, the error wording and one sync send.

The wire modules (openai, anthropic, gemini) only build and parse; all I/O is here,
so an async runner can reuse them, `status_error`, `transport_error` and `CallContext`
around `httpx.AsyncClient` without touching this sync path.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from collections.abc import Mapping
from typing import Any, Callable, Protocol

import httpx
from httpx_sse import EventSource

from routecli.config import ProviderConfig
from routecli.domain import Reply, Request, Usage
from routecli.errors import ProviderError, redact

DEFAULT_MAX_TOKENS = 4096  # Anthropic refuses a request without max_tokens
VENDOR_TEXT_LIMIT = 200
# Wording the three vendors use when the prompt does not fit the context window.
CONTEXT_TOO_LONG = re.compile(
    r"context.length|context window|maximum context|prompt is too long|too many tokens"
    r"|input token count|maximum number of tokens|reduce the length",
    re.IGNORECASE,
)
# A body that fails to parse surfaces as one of these from the wire modules.
PARSE_ERRORS = (ValueError, KeyError, TypeError, IndexError, AttributeError)


@dataclass(frozen=True, slots=True)
class HttpCall:
    """One request, fully built: what to send, nothing sent yet."""

    method: str
    url: str
    headers: Mapping[str, str]
    json: Mapping[str, Any]
    stream: bool = False


@dataclass(frozen=True, slots=True)
class ParsedReply:
    text: str
    usage: Usage | None
    model: str  # "" when the vendor did not say
    finish_reason: str | None = None


class StreamState(Protocol):
    @property
    def done(self) -> bool: ...

    def feed(self, event_name: str, data: str) -> str: ...

    def result(self) -> ParsedReply: ...


class Provider(Protocol):
    name: str

    def complete(
        self,
        request: Request,
        model: str,
        *,
        stream: bool = True,
        on_text: Callable[[str], None] | None = None,
    ) -> Reply: ...


def _no_hints(status: int, body: Any) -> tuple[str | None, float | None]:
    return None, None


@dataclass(frozen=True, slots=True)
class WireFormat:
    """One wire format's pure functions, the value `WIRE_FORMATS` maps a kind to."""

    kind: str
    build_call: Callable[..., HttpCall]
    parse_response: Callable[[Any], ParsedReply]
    new_stream: Callable[[], StreamState]
    error_message: Callable[[Any], str]
    # Vendor quirks the HTTP status alone misses: (kind override, retry-after from the body).
    error_hints: Callable[[int, Any], tuple[str | None, float | None]] = _no_hints


class StreamAccumulator:
    """Collected text, the latest usage/model/finish reason, and whether the end arrived."""

    terminator = "the end marker"

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.usage: Usage | None = None
        self.model = ""
        self.finish_reason: str | None = None
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    def _add(self, delta: str) -> str:
        if delta:
            self.parts.append(delta)
        return delta

    def result(self) -> ParsedReply:
        if not self._done:
            raise ProviderError(f"the stream ended before {self.terminator}", kind="stream_cut")
        return ParsedReply("".join(self.parts), self.usage, self.model, self.finish_reason)


# ---------------------------------------------------------------- pure helpers


def count(mapping: Any, *path: str) -> int:
    """The integer at `path` in nested dicts; 0 when a step is missing or null."""
    node = mapping
    for key in path:
        if not isinstance(node, dict) and not isinstance(node, Mapping):  # dict first: an ABC check costs ~10x
            return 0
        node = node.get(key)
    return int(node) if isinstance(node, (int, float)) else 0


def json_headers(stream: bool) -> dict[str, str]:
    return {"content-type": "application/json", "accept": "text/event-stream" if stream else "application/json"}


def error_message(body: Any) -> str:
    """The vendor's own text from an error body: `{"error": {"message"}}` and the common variants."""
    if isinstance(body, list) and body:  # Gemini wraps errors in a list on some endpoints
        body = body[0]
    if not isinstance(body, Mapping):
        return "" if body is None else str(body)
    error = body.get("error", body)
    if isinstance(error, str):  # Ollama, llama.cpp
        return error
    if isinstance(error, Mapping):
        found = error.get("message") or body.get("detail") or body.get("message")
        if found:
            return str(found)
    return json.dumps(body)[:VENDOR_TEXT_LIMIT]


def one_line(text: str, limit: int = VENDOR_TEXT_LIMIT) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def kind_for_status(status: int) -> str:
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "not_found"
    if status == 429:
        return "rate_limit"
    if status == 408:
        return "timeout"
    return "server" if status >= 500 else "bad_request"


def parse_retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` as seconds or an HTTP date."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


# ---------------------------------------------------------------- errors


@dataclass(frozen=True, slots=True)
class CallContext:
    """Who was called for what: everything an error message needs to name the fix."""

    cfg: ProviderConfig
    model: str
    api_key: str | None

    def error(self, kind: str, *, status: int | None = None, vendor: str = "", note: str = "",
              retry_after: float | None = None) -> ProviderError:
        """vendor: the vendor's own words, quoted as such; note: our detail (a parse or socket error)."""
        message = _fix(kind, self, status, retry_after, vendor)
        if vendor.strip():
            message += f" ({self.cfg.name} said: {one_line(vendor)})"
        if note.strip():
            message += f" ({one_line(note)})"
        return ProviderError(
            redact(one_line(message, 1000), [self.api_key]),
            kind=kind, provider=self.cfg.name, model=self.model, status=status, retry_after=retry_after,
        )

    def from_wire(self, err: ProviderError) -> ProviderError:
        """Reword an error a pure wire function raised, adding provider, model and the fix."""
        ours = err.kind in ("stream_cut", "malformed")
        return self.error(err.kind, status=err.status, retry_after=err.retry_after,
                          vendor="" if ours else err.message, note=err.message if ours else "")


def _fix(kind: str, ctx: CallContext, status: int | None, retry_after: float | None, vendor: str) -> str:
    cfg, http = ctx.cfg, f" (HTTP {status})" if status else ""
    name, section = cfg.name, f"[providers.{cfg.name}]"
    if kind == "auth":
        where = f"check {cfg.api_key_env} or run `routecli keys set {name}`" if cfg.api_key_env else (
            f"set api_key_env in {section} and run `routecli keys set {name}`")
        return f"{name} rejected the API key{http}: {where}"
    if kind == "not_found":
        return (f"{name} does not know model {ctx.model!r}{http}: check the model id in the tier config "
                f"or base_url {cfg.base_url} in {section}")
    if kind == "rate_limit":
        wait = f"retry after {round(retry_after, 1):g} s" if retry_after is not None else "wait and retry"
        return f"{name} rate limited the request{http}: {wait}, or pick another tier with --tier"
    if kind == "server":
        return f"{name} had a server error{http}: try again later or pick another tier with --tier"
    if kind == "timeout" and status:  # the server's own timeout (408), not ours
        return f"{name} timed out handling the request{http}: try again or shorten the prompt"
    if kind == "timeout":
        return f"{name} gave no answer within {cfg.read_timeout:g} s: raise read_timeout in {section} or try again"
    if kind == "connection":
        return f"cannot connect to {cfg.base_url}: is the server running? check base_url in {section}"
    if kind == "malformed":
        return (f"{name} sent a response routecli cannot parse: try again, or check that base_url in "
                f"{section} points at an API of kind {cfg.kind!r}")
    if kind == "stream_cut":
        return f"{name} stopped streaming before the answer was complete: try again"
    if kind == "context_window" or CONTEXT_TOO_LONG.search(vendor):
        return (f"the prompt is too long for {name}:{ctx.model}{http}: shorten it or pick a model "
                f"with a larger context window (--tier or --model)")
    if kind == "refusal" or "blocked" in vendor:
        return f"{name} blocked the prompt{http}: rephrase it or pick another provider with --model"
    return f"{name} refused the request{http}: check the prompt, max_tokens and temperature"


def status_error(status: int, headers: Mapping[str, str], body_text: str,
                 ctx: CallContext, wire: WireFormat) -> ProviderError:
    """The ProviderError for a non-2xx response, from its status, headers and body."""
    try:
        body = json.loads(body_text) if body_text.strip() else None
        vendor = wire.error_message(body) if body is not None else ""
        kind_hint, body_wait = wire.error_hints(status, body)
    except PARSE_ERRORS:
        body, vendor, kind_hint, body_wait = None, body_text, None, None
    retry_after = parse_retry_after(headers)
    kind = kind_hint or kind_for_status(status)
    if kind == "bad_request" and CONTEXT_TOO_LONG.search(vendor):
        kind = "context_window"  # a fallback to a model with a larger window can answer it
    return ctx.error(
        kind, status=status, vendor=vendor,
        retry_after=body_wait if retry_after is None else retry_after,
    )


def transport_error(exc: httpx.TransportError, ctx: CallContext, *, mid_stream: bool = False) -> ProviderError:
    cfg = ctx.cfg
    if isinstance(exc, httpx.ConnectTimeout):
        return ProviderError(
            f"cannot connect to {cfg.base_url} within {cfg.connect_timeout:g} s: is the server up? "
            f"raise connect_timeout or check base_url in [providers.{cfg.name}]",
            kind="timeout", provider=cfg.name, model=ctx.model,
        )
    if isinstance(exc, httpx.TimeoutException):
        return ctx.error("timeout")
    if mid_stream:
        return ctx.error("stream_cut", note=str(exc) or type(exc).__name__)
    if isinstance(exc, httpx.ConnectError):
        return ctx.error("connection")
    return ctx.error("connection", note=str(exc) or type(exc).__name__)


def guarded(ctx: CallContext, fn: Callable[..., Any], *args: Any) -> Any:
    """Run a pure wire function; its failures become contextual ProviderErrors."""
    try:
        return fn(*args)
    except ProviderError as err:
        raise ctx.from_wire(err) from None
    except PARSE_ERRORS as exc:
        raise ctx.error("malformed", note=f"{type(exc).__name__}: {exc}") from None


# ---------------------------------------------------------------- sync send


class _Timer:
    """Latency from construction; time to first text from the first non-empty emit."""

    def __init__(self, on_text: Callable[[str], None] | None) -> None:
        self.start = time.perf_counter()
        self.first: float | None = None
        self.on_text = on_text

    def emit(self, text: str) -> None:
        if text and self.first is None:
            self.first = time.perf_counter()
        if self.on_text is not None:
            self.on_text(text)

    def ms_since_start(self, moment: float | None = None) -> float:
        return ((time.perf_counter() if moment is None else moment) - self.start) * 1000


class HttpProvider:
    """One configured provider speaking one wire format over a shared httpx.Client."""

    def __init__(self, cfg: ProviderConfig, wire: WireFormat, *, api_key: str | None,
                 client: httpx.Client, default_max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        self.name = cfg.name
        self.cfg = cfg
        self.wire = wire
        self.api_key = api_key
        self.client = client
        self.default_max_tokens = default_max_tokens

    def __repr__(self) -> str:  # never show the key
        return f"{type(self).__name__}({self.name!r}, kind={self.wire.kind!r}, base_url={self.cfg.base_url!r})"

    def complete(self, request: Request, model: str, *, stream: bool = True,
                 on_text: Callable[[str], None] | None = None) -> Reply:
        ctx = CallContext(self.cfg, model, self.api_key)
        call = self.wire.build_call(
            request, model, stream=stream, base_url=self.cfg.base_url,
            api_key=self.api_key, default_max_tokens=self.default_max_tokens,
        )
        timer = _Timer(on_text)
        parsed = self._stream(call, ctx, timer) if stream else self._once(call, ctx, timer)
        ttft = timer.ms_since_start(timer.first) if stream and timer.first is not None else None
        return Reply(
            text=parsed.text, usage=parsed.usage, model=parsed.model or model,
            finish_reason=parsed.finish_reason, ttft_ms=ttft, latency_ms=timer.ms_since_start(),
        )

    def _once(self, call: HttpCall, ctx: CallContext, timer: _Timer) -> ParsedReply:
        try:
            response = self.client.request(call.method, call.url, headers=dict(call.headers), json=call.json)
        except httpx.TransportError as exc:
            raise transport_error(exc, ctx) from None
        if not response.is_success:
            raise status_error(response.status_code, response.headers, response.text, ctx, self.wire)
        parsed = guarded(ctx, lambda: self.wire.parse_response(json.loads(response.text)))
        timer.emit(parsed.text)
        return parsed

    def _stream(self, call: HttpCall, ctx: CallContext, timer: _Timer) -> ParsedReply:
        try:
            with self.client.stream(call.method, call.url, headers=dict(call.headers), json=call.json) as response:
                if not response.is_success:
                    response.read()
                    raise status_error(response.status_code, response.headers, response.text, ctx, self.wire)
                return self._read_events(response, ctx, timer)
        except httpx.TransportError as exc:
            raise transport_error(exc, ctx) from None

    def _read_events(self, response: httpx.Response, ctx: CallContext, timer: _Timer) -> ParsedReply:
        content_type = response.headers.get("content-type", "")
        try:
            if "text/event-stream" not in content_type:
                # Some OpenAI-compatible servers ignore `stream` and answer with one JSON body.
                parsed = guarded(ctx, lambda: self.wire.parse_response(json.loads(response.read())))
                timer.emit(parsed.text)
                return parsed
            state = self.wire.new_stream()
            for event in EventSource(response).iter_sse():
                delta = guarded(ctx, state.feed, event.event, event.data)
                if delta:
                    timer.emit(delta)
                if state.done:
                    break
        except httpx.TransportError as exc:
            raise transport_error(exc, ctx, mid_stream=True) from None
        return guarded(ctx, state.result)
