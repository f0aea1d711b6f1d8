"""A fake OpenAI / Anthropic / Gemini API server for tests. Standard library only.

Run it:  python tests/fakevendor.py [--host 127.0.0.1] [--port 0] [--key KEY] [--latency S] [--watch-stdin]
The first stdout line is the port it listens on. --latency S delays every vendor answer
by S seconds (on top of any delay directive), as a remote API would. --watch-stdin exits when stdin
closes, so a server started by a test run dies with it even if pytest is killed.
From Python: `start_server(key=...)` -> (root_url, process), `stop_server(process)`,
or `with serve(key=...) as root:`; `requests_log(root)` and `reset(root)` wrap the
control paths below.

Paths (the vendors' own wire formats, streaming and not):
  POST /v1/chat/completions                      OpenAI; "stream": true gives SSE ending in data: [DONE],
                                                 with a usage chunk when stream_options.include_usage is set
  POST /v1/messages                              Anthropic (requires anthropic-version and max_tokens)
  POST /v1beta/models/<model>:generateContent    Gemini
  POST /v1beta/models/<model>:streamGenerateContent?alt=sse
  GET  /_requests   JSON list of {"path", "body"} for every vendor request received (never headers)
  POST /_reset      clears that list and the `times` counters
  GET  /_health     {"ok": true}

Auth: with --key K every vendor request must carry K in the vendor's header
(Authorization: Bearer K / x-api-key / x-goog-api-key), else HTTP 401 with the
vendor's error body (real Gemini says 400 API_KEY_INVALID; this server keeps 401).

Answer: "echo: <last user message, directives removed>", model = the requested one.
Usage: input = words (directives left out) in the system prompt and all messages,
+ cached; output = words in the answer + reasoning. Streams send one word per chunk.
"times" counts requests with this exact message list ("messages" / "contents").

Directives, in the last user message: [[name=value name2 ...]], any number of blocks.
  status=N          answer HTTP N with the vendor's error body
  retry_after=S     with status: a Retry-After: S header (Gemini also gets RetryInfo retryDelay)
  retry_after_ms=M  with status: a retry-after-ms: M header
  delay=S           sleep S seconds before sending the response headers
  slow=S            sleep S seconds before each stream event
  malformed         a 200 whose body (or first SSE data) is not JSON
  cut               stream: end the body cleanly before the vendor's end marker
                    (no [DONE] / message_stop / finishReason); non-stream: truncated JSON
  drop              close the socket mid-body: the stream stops before its end marker without the
                    closing chunk; a plain body stops halfway short of its Content-Length
  error=TYPE        stream: an in-stream error after the first events (Anthropic `event: error`
                    of that type, e.g. overloaded_error; OpenAI/Gemini a data: {"error": ...})
  words=N           answer "word1 word2 ... wordN" instead of the echo
  reply_b64=B       answer exactly the UTF-8 text base64 B encodes (e.g. a judge's JSON)
  cached=N          report N cached prompt tokens (a subset of input)
  reasoning=N       report N reasoning tokens (Anthropic: a thinking block; Gemini: a thought part)
  times=N           apply the failure directives (status, delay, slow, malformed, cut, drop,
                    error) only to the first N requests with these exact messages, then answer
                    normally: "[[status=503 times=2]]" fails twice, then succeeds
  only=M1,M2        apply the failure directives only to requests for these model ids
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator
from urllib.parse import urlsplit

DIRECTIVE = re.compile(r"\[\[(.*?)\]\]", re.DOTALL)
FAILURES = ("status", "delay", "slow", "malformed", "cut", "drop", "error")
GEMINI_PATH = re.compile(r"^/v1beta/models/([^/:]+):(generateContent|streamGenerateContent)$")
Event = tuple[str | None, str]  # (SSE event name or None, data)


def parse_directives(text: str) -> tuple[str, dict[str, str]]:
    found: dict[str, str] = {}
    for block in DIRECTIVE.findall(text):
        for token in block.split():
            name, _, value = token.partition("=")
            found[name.lower()] = value or "1"
    return " ".join(DIRECTIVE.sub(" ", text).split()), found


def _text_of(content: Any) -> str:
    """Message content as plain text: a string, or the text of a list of parts/blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


class Plan:
    """What to answer: text, token counts and the directives steering how."""

    def __init__(self, model: str, stream: bool, texts: list[str], last_user: str, flags: dict[str, str]):
        clean, self.flags = parse_directives(last_user)
        self.flags.update(flags)
        self.model, self.stream = model, stream
        words = int(self.flags.get("words", 0))
        self.words = [f"word{i}" for i in range(1, words + 1)] if words else ["echo:", *clean.split()]
        if "reply_b64" in self.flags:  # an exact answer, e.g. JSON for a judge
            self.words = base64.b64decode(self.flags["reply_b64"]).decode("utf-8").split(" ")
        self.cached = int(self.flags.get("cached", 0))
        self.reasoning = int(self.flags.get("reasoning", 0))
        self.input_tokens = sum(len(DIRECTIVE.sub(" ", text).split()) for text in texts) + self.cached
        self.output_tokens = len(self.words) + self.reasoning

    @property
    def text(self) -> str:
        return " ".join(self.words)

    def deltas(self) -> list[str]:
        return [word if i == 0 else " " + word for i, word in enumerate(self.words)]


# ---------------------------------------------------------------- wire formats


class OpenAIWire:
    error_types = {401: ("invalid_request_error", "invalid_api_key"), 404: ("invalid_request_error", "model_not_found"),
                   429: ("requests", "rate_limit_exceeded")}

    def authorised(self, headers: Any, key: str) -> bool:
        return headers.get("authorization") == f"Bearer {key}"

    def plan(self, body: dict, path: str) -> Plan:
        messages = body["messages"]
        last_user = next((_text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
        flags = {"_usage": "1"} if (body.get("stream_options") or {}).get("include_usage") else {}
        return Plan(body["model"], bool(body.get("stream")), [_text_of(m.get("content")) for m in messages],
                    last_user, flags)

    def error_body(self, status: int, message: str, retry_after: str | None) -> dict:
        kind, code = self.error_types.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}

    def usage(self, plan: Plan) -> dict:
        return {"prompt_tokens": plan.input_tokens, "completion_tokens": plan.output_tokens,
                "total_tokens": plan.input_tokens + plan.output_tokens,
                "prompt_tokens_details": {"cached_tokens": plan.cached, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": plan.reasoning, "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}

    def body(self, plan: Plan) -> dict:
        message = {"role": "assistant", "content": plan.text, "refusal": None, "annotations": []}
        return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": plan.model,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
                "usage": self.usage(plan), "service_tier": "default", "system_fingerprint": "fp_fake"}

    def _chunk(self, plan: Plan, choices: list, usage: dict | None = None) -> Event:
        chunk = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                 "model": plan.model, "system_fingerprint": "fp_fake", "choices": choices}
        if "_usage" in plan.flags:
            chunk["usage"] = usage
        return None, json.dumps(chunk)

    def events(self, plan: Plan) -> tuple[list[Event], list[Event]]:
        def choice(delta: dict, finish: str | None = None) -> list:
            return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        body = [self._chunk(plan, choice({"role": "assistant", "content": "", "refusal": None}))]
        body += [self._chunk(plan, choice({"content": delta})) for delta in plan.deltas()]
        final = [self._chunk(plan, choice({}, "stop"))]
        if "_usage" in plan.flags:
            final.append(self._chunk(plan, [], self.usage(plan)))
        return body, final + [(None, "[DONE]")]

    def stream_error(self, kind: str) -> Event:
        return None, json.dumps({"error": {"message": f"fake {kind}", "type": kind, "param": None, "code": None}})


class AnthropicWire:
    error_types = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                   404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error"}

    def authorised(self, headers: Any, key: str) -> bool:
        return headers.get("x-api-key") == key

    def plan(self, body: dict, path: str) -> Plan:
        if "max_tokens" not in body:
            raise ValueError("max_tokens: Field required")
        messages = body["messages"]
        last_user = next((_text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
        texts = [_text_of(body.get("system", ""))] + [_text_of(m.get("content")) for m in messages]
        return Plan(body["model"], bool(body.get("stream")), texts, last_user, {})

    def error_body(self, status: int, message: str, retry_after: str | None) -> dict:
        kind = self.error_types.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake"}

    def usage(self, plan: Plan, output_tokens: int) -> dict:
        return {"input_tokens": plan.input_tokens - plan.cached, "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": plan.cached, "output_tokens": output_tokens, "service_tier": "standard"}

    def _content(self, plan: Plan) -> list[dict]:
        thinking = [{"type": "thinking", "thinking": "Let me think.", "signature": "fake"}] if plan.reasoning else []
        return thinking + [{"type": "text", "text": plan.text}]

    def body(self, plan: Plan) -> dict:
        return {"id": "msg_fake", "type": "message", "role": "assistant", "model": plan.model,
                "content": self._content(plan), "stop_reason": "end_turn", "stop_sequence": None,
                "usage": self.usage(plan, plan.output_tokens)}

    def events(self, plan: Plan) -> tuple[list[Event], list[Event]]:
        def event(name: str, **data: Any) -> Event:
            return name, json.dumps({"type": name, **data})
        start = {"id": "msg_fake", "type": "message", "role": "assistant", "model": plan.model, "content": [],
                 "stop_reason": None, "stop_sequence": None, "usage": self.usage(plan, 1)}
        body = [event("message_start", message=start)]
        index = 0
        if plan.reasoning:
            body += [event("content_block_start", index=0, content_block={"type": "thinking", "thinking": ""}),
                     event("content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": "Hmm."}),
                     event("content_block_stop", index=0)]
            index = 1
        body += [event("content_block_start", index=index, content_block={"type": "text", "text": ""}),
                 event("ping")]
        body += [event("content_block_delta", index=index, delta={"type": "text_delta", "text": delta})
                 for delta in plan.deltas()]
        final = [event("content_block_stop", index=index),
                 event("message_delta", delta={"stop_reason": "end_turn", "stop_sequence": None},
                       usage={"output_tokens": plan.output_tokens}),
                 event("message_stop")]
        return body, final

    def stream_error(self, kind: str) -> Event:
        return "error", json.dumps({"type": "error", "error": {"type": kind, "message": f"fake {kind}"}})


class GeminiWire:
    statuses = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}

    def authorised(self, headers: Any, key: str) -> bool:
        return headers.get("x-goog-api-key") == key

    def plan(self, body: dict, path: str) -> Plan:
        url = urlsplit(path)
        model, action = GEMINI_PATH.match(url.path).groups()  # type: ignore[union-attr]
        if action == "streamGenerateContent" and "alt=sse" not in url.query:
            raise ValueError("fakevendor only streams with ?alt=sse")
        contents = body["contents"]
        texts = [_text_of(c.get("parts")) for c in contents]
        texts.append(_text_of((body.get("systemInstruction") or {}).get("parts")))
        last_user = next((_text_of(c.get("parts")) for c in reversed(contents) if c.get("role", "user") == "user"), "")
        return Plan(model, action == "streamGenerateContent", texts, last_user, {})

    def error_body(self, status: int, message: str, retry_after: str | None) -> dict:
        error: dict[str, Any] = {"code": status, "message": message, "status": self.statuses.get(status, "UNKNOWN")}
        if retry_after:
            error["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after}s"}]
        return {"error": error}

    def usage(self, plan: Plan, output_words: int) -> dict:
        usage = {"promptTokenCount": plan.input_tokens, "candidatesTokenCount": output_words,
                 "totalTokenCount": plan.input_tokens + output_words + plan.reasoning,
                 "promptTokensDetails": [{"modality": "TEXT", "tokenCount": plan.input_tokens}]}
        if plan.cached:
            usage["cachedContentTokenCount"] = plan.cached
        if plan.reasoning:
            usage["thoughtsTokenCount"] = plan.reasoning
        return usage

    def _chunk(self, plan: Plan, parts: list[dict], output_words: int, finish: str | None = None) -> dict:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        return {"candidates": [candidate], "usageMetadata": self.usage(plan, output_words),
                "modelVersion": plan.model, "responseId": "fake"}

    def body(self, plan: Plan) -> dict:
        thought = [{"text": "Thinking it over.", "thought": True}] if plan.reasoning else []
        return self._chunk(plan, thought + [{"text": plan.text}], len(plan.words), "STOP")

    def events(self, plan: Plan) -> tuple[list[Event], list[Event]]:
        deltas = plan.deltas()
        thought = [{"text": "Thinking.", "thought": True}]
        body = [(None, json.dumps(self._chunk(plan, thought, 0)))] if plan.reasoning else []
        body += [(None, json.dumps(self._chunk(plan, [{"text": d}], i + 1))) for i, d in enumerate(deltas[:-1])]
        last = self._chunk(plan, [{"text": deltas[-1]}], len(deltas), "STOP")
        return body, [(None, json.dumps(last))]

    def stream_error(self, kind: str) -> Event:
        return None, json.dumps({"error": {"code": 503, "message": f"fake {kind}", "status": "UNAVAILABLE"}})


WIRES: dict[str, Any] = {"/v1/chat/completions": OpenAIWire(), "/v1/messages": AnthropicWire()}
GEMINI = GeminiWire()


# ---------------------------------------------------------------- server


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the default 5 drops SYNs under a burst of concurrent clients
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], key: str | None, latency: float = 0.0) -> None:
        super().__init__(address, Handler)
        self.key = key
        self.latency = latency
        self.lock = threading.Lock()
        self.log: list[dict[str, Any]] = []
        self.seen: dict[str, int] = {}

    def record(self, path: str, body: Any) -> None:
        with self.lock:
            self.log.append({"path": path, "body": body})

    def count(self, message: str) -> int:
        """How many requests carried this exact message before this one."""
        with self.lock:
            self.seen[message] = self.seen.get(message, 0) + 1
            return self.seen[message] - 1

    def reset(self) -> None:
        with self.lock:
            self.log.clear()
            self.seen.clear()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)  # a client hanging up is no server bug


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and chunked streams the client can tell apart from a drop
    server: FakeServer
    timeout = 30  # idle keep-alive connections free their thread eventually

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; with Nagle on, the body waits ~40 ms for an ACK.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/_requests":
            with self.server.lock:
                self._send_json(200, list(self.server.log))
        elif self.path == "/_health":
            self._send_json(200, {"ok": True})
        else:
            self._send_json(404, {"error": {"message": f"no route GET {self.path}"}})

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.path == "/_reset":
            self.server.reset()
            return self._send_json(200, {"ok": True})
        wire = WIRES.get(self.path) or (GEMINI if GEMINI_PATH.match(urlsplit(self.path).path) else None)
        if wire is None:
            return self._send_json(404, {"error": {"message": f"no route POST {self.path}"}})
        try:
            body = json.loads(raw)
        except ValueError:
            self.server.record(self.path, None)
            return self._send_json(400, wire.error_body(400, "request body is not valid JSON", None))
        self.server.record(self.path, body)
        self._answer(wire, body)

    def _answer(self, wire: Any, body: dict) -> None:
        if self.server.key and not wire.authorised(self.headers, self.server.key):
            return self._send_json(401, wire.error_body(401, "Invalid API key: check your key (fake)", None))
        if wire is WIRES["/v1/messages"] and not self.headers.get("anthropic-version"):
            return self._send_json(400, wire.error_body(400, "anthropic-version: header is required", None))
        try:
            plan = wire.plan(body, self.path)
            flags = plan.flags
            times = int(flags.get("times", 0))
            if times and self.server.count(json.dumps(body.get("messages") or body.get("contents"))) >= times:
                flags = {k: v for k, v in flags.items() if k not in FAILURES}
            if "only" in flags and plan.model not in flags["only"].split(","):
                flags = {k: v for k, v in flags.items() if k not in FAILURES}
            delay, status = float(flags.get("delay", 0)), int(flags.get("status", 0))
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            return self._send_json(400, wire.error_body(400, f"invalid request: {exc}", None))
        time.sleep(delay + self.server.latency)
        if status:
            return self._fail(wire, status, flags)
        if plan.stream:
            return self._stream(wire, plan, flags)
        payload = json.dumps(wire.body(plan)).encode()
        if "malformed" in flags:
            payload = b'{"id": "broken", "choices": [oops'
        elif "cut" in flags:
            payload = payload[: len(payload) // 2]
        self._send_bytes(200, "application/json", payload, drop="drop" in flags)

    def _fail(self, wire: Any, status: int, flags: dict[str, str]) -> None:
        headers = {}
        if "retry_after" in flags:
            headers["Retry-After"] = flags["retry_after"]
        if "retry_after_ms" in flags:
            headers["retry-after-ms"] = flags["retry_after_ms"]
        message = f"fake error {status}" + (": model is overloaded" if status >= 500 else "")
        self._send_json(status, wire.error_body(status, message, flags.get("retry_after")), headers)

    def _stream(self, wire: Any, plan: Plan, flags: dict[str, str]) -> None:
        events, final = wire.events(plan)
        if "malformed" in flags:
            events, final = [(None, "{not json")], []
        elif "error" in flags:
            events, final = events[:2] + [wire.stream_error(flags["error"])], []
        elif "cut" in flags or "drop" in flags:
            final = []
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        slow = float(flags.get("slow", 0))
        for name, data in events + final:
            time.sleep(slow)
            self._write_chunk((f"event: {name}\n" if name else "") + f"data: {data}\n\n")
        if "drop" in flags:
            self.close_connection = True  # no terminating chunk: the client sees a broken body
            return
        self.wfile.write(b"0\r\n\r\n")

    def _write_chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._send_bytes(status, "application/json", json.dumps(body).encode(), headers=headers)

    def _send_bytes(self, status: int, content_type: str, payload: bytes,
                    headers: dict[str, str] | None = None, drop: bool = False) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(payload) * 2 if drop else len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
        if drop:
            self.close_connection = True


# ---------------------------------------------------------------- running it


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake OpenAI/Anthropic/Gemini server for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--key", default=None, help="the API key every request must carry")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before every vendor answer")
    parser.add_argument("--watch-stdin", action="store_true", help="exit when stdin reaches EOF")
    args = parser.parse_args(argv)
    server = FakeServer((args.host, args.port), args.key, args.latency)
    print(server.server_address[1], flush=True)
    if args.watch_stdin:
        threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def start_server(key: str | None = None, host: str = "127.0.0.1", *, port: int = 0,
                 latency: float = 0.0) -> tuple[str, subprocess.Popen]:
    """Start the server as a subprocess; returns ("http://host:port", process)."""
    command = [sys.executable, os.path.abspath(__file__), "--host", host, "--port", str(port), "--watch-stdin",
               "--latency", str(latency)]
    process = subprocess.Popen(command + (["--key", key] if key else []),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline().strip()  # type: ignore[union-attr]
    if not line.isdigit():
        stop_server(process)
        raise RuntimeError(f"fakevendor did not start (first line {line!r})")
    return f"http://{host}:{int(line)}", process


def stop_server(process: subprocess.Popen) -> None:
    for stream in (process.stdin, process.stdout):
        if stream:
            stream.close()
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def serve(key: str | None = None) -> Iterator[str]:
    root, process = start_server(key)
    try:
        yield root
    finally:
        stop_server(process)


def requests_log(root: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{root}/_requests", timeout=5) as response:
        return json.loads(response.read())


def reset(root: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{root}/_reset", data=b"", method="POST"), timeout=5).close()


if __name__ == "__main__":
    main()
