"""Read-only analytics over HTTP, behind the same member keys as the chat route: stats, export
(streamed), the HTML report, model health and budgets, plus the OpenAPI schema of everything served.

Queries run in a worker thread, so a slow stats call never holds up the chat requests on the loop.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable
from urllib.parse import parse_qs

from routecli.errors import UsageError
from routecli.serve.http import HttpRequest, HttpResponse

if TYPE_CHECKING:
    from routecli.config import Config
    from routecli.store import Store

CHUNK = 65_536


async def read_only(config: Config, store: Store, request: HttpRequest) -> HttpResponse:
    query = {key: values for key, values in parse_qs(request.query, keep_blank_values=True).items()}
    one = lambda name: (query.get(name) or [None])[-1]  # noqa: E731
    path = request.path.rstrip("/")
    if path == "/openapi.json":
        return _json(openapi(config))
    if path == "/routecli/stats":
        return _json(await asyncio.to_thread(_stats, store, one("since"), one("until"), query.get("by")))
    if path == "/routecli/health":
        from routecli.analytics.guards import health_report

        return _json(await asyncio.to_thread(health_report, store, config, _when(one("since") or "1h")))
    if path == "/routecli/budget":
        from routecli.analytics.guards import budget_report

        return _json(await asyncio.to_thread(budget_report, store, config))
    if path == "/routecli/report":
        page = await asyncio.to_thread(_report, store, config, one("since"), one("until"))
        return HttpResponse(200, page.encode(), content_type="text/html; charset=utf-8")
    if path == "/routecli/export":
        return _export(store, one("format") or "jsonl", one("since"), one("until"), query.get("columns"),
                       query.get("where"))
    raise UsageError(f"no analytics route {request.path}; see /openapi.json")


def _when(text: str | None) -> Any:
    from routecli.when import parse_when

    return parse_when(text)


def _stats(store: Store, since: str | None, until: str | None, by: list[str] | None) -> dict[str, Any]:
    from routecli.analytics.stats import check_by, compute_stats
    from routecli.when import split_list

    dims = check_by(split_list(by)) if by else None
    return compute_stats(store, since=_when(since), until=_when(until), by=dims)


def _report(store: Store, config: Config, since: str | None, until: str | None) -> str:
    from routecli.analytics.report_html import report_data
    from routecli.analytics.report_page import render_html

    return render_html(report_data(store, config, since=_when(since), until=_when(until)))


def _export(store: Store, kind: str, since: str | None, until: str | None, columns: list[str] | None,
            where: list[str] | None) -> HttpResponse:
    from routecli.analytics.export import check_columns, iter_rows, parse_where, write_csv, write_jsonl
    from routecli.when import split_list

    if kind not in ("csv", "jsonl"):
        raise UsageError(f"format must be csv or jsonl, got {kind!r}")
    chosen = check_columns(split_list(columns))
    filters = parse_where(where or [])
    window = {"since": _when(since), "until": _when(until)}

    def produce(out: Any) -> None:
        rows = iter_rows(store, columns=chosen, where=filters, json_text=kind == "csv", **window)
        if kind == "csv":
            write_csv(rows, out, columns=chosen)
        else:
            write_jsonl(rows, out)

    content_type = "text/csv; charset=utf-8" if kind == "csv" else "application/x-ndjson"
    return HttpResponse(200, stream=_streamed(produce), content_type=content_type)


class _Pipe:
    """A text file for the export writers whose chunks go, with back-pressure, to the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[bytes | None]) -> None:
        self.loop, self.queue, self.parts, self.size = loop, queue, [], 0

    def write(self, text: str) -> int:
        self.parts.append(text)
        self.size += len(text)
        if self.size >= CHUNK:
            self.flush()
        return len(text)

    def flush(self) -> None:
        if self.parts:
            data = "".join(self.parts).encode("utf-8")
            self.parts, self.size = [], 0
            asyncio.run_coroutine_threadsafe(self.queue.put(data), self.loop).result()


async def _streamed(produce: Callable[[Any], None]) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=8)

    def work() -> None:
        pipe = _Pipe(loop, queue)
        try:
            produce(pipe)
            pipe.flush()
        finally:
            asyncio.run_coroutine_threadsafe(queue.put(None), loop).result()

    task = loop.run_in_executor(None, work)
    while (chunk := await queue.get()) is not None:
        yield chunk
    await task


def _json(body: dict[str, Any]) -> HttpResponse:
    return HttpResponse(200, json.dumps(body, ensure_ascii=False, default=str).encode())


def openapi(config: Config) -> dict[str, Any]:
    """The OpenAPI 3.1 description of what `routecli serve` answers."""
    def get(summary: str, params: list[tuple[str, str]], kind: str = "application/json") -> dict[str, Any]:
        return {"get": {"summary": summary, "security": [{"bearer": []}],
                        "parameters": [{"name": n, "in": "query", "required": False, "description": d,
                                        "schema": {"type": "string"}} for n, d in params],
                        "responses": {"200": {"description": "OK", "content": {kind: {}}},
                                      "401": {"description": "missing or unknown member key"}}}}

    window = [("since", "7d, 24h, 30m or an ISO date"), ("until", "same forms; exclusive")]
    chat = {"post": {"summary": "OpenAI-compatible chat completion; model auto | tier:NAME | provider:model | "
                                "router-NAME-THRESHOLD", "security": [{"bearer": []}],
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {
                         "type": "object", "required": ["messages"],
                         "properties": {"model": {"type": "string"}, "messages": {"type": "array"},
                                        "stream": {"type": "boolean"}, "max_tokens": {"type": "integer"},
                                        "temperature": {"type": "number"}}}}}},
                     "responses": {"200": {"description": "chat.completion, or server-sent chunks when stream"},
                                   "400": {"description": "bad request"}, "401": {"description": "bad key"},
                                   "413": {"description": "body too large"}, "429": {"description": "budget"},
                                   "502": {"description": "upstream failed"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "routecli serve", "version": _version()},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": {
            "/v1/chat/completions": chat,
            "/v1/models": get("auto, tier:NAME, router and provider:model ids", []),
            "/health": get("liveness", []),
            "/routecli/stats": get("the JSON of `routecli stats --json`", window + [("by", "tier,model,provider,agent,"
                                                                                      "tag,day (repeatable)")]),
            "/routecli/export": get("ledger rows, streamed", window + [
                ("format", "csv or jsonl"), ("columns", "a,b,c"), ("where", "field=value (repeatable, ANDed)")],
                "text/csv"),
            "/routecli/report": get("the self-contained HTML report", window, "text/html"),
            "/routecli/health": get("each model's circuit breaker, error rate and latency",
                                    [("since", "window, default 1h")]),
            "/routecli/budget": get("spend against each budget limit", []),
            "/openapi.json": get("this document", []),
        },
    }


def _version() -> str:
    from routecli import __version__

    return __version__
