"""The exact response cache's key: the model and everything in the request that shapes the answer."""

from __future__ import annotations

import hashlib
import json

from routecli.domain import ModelRef, Request


def cacheable(request: Request) -> bool:
    """Only a temperature-0 request asks for the same answer every time; tool calls have effects."""
    return request.temperature == 0 and not request.tools and not any(m.role == "tool" for m in request.messages)


def cache_key(request: Request, ref: ModelRef, default_max_tokens: int) -> str:
    payload = {
        "model": str(ref),
        "system": request.system or "",
        "messages": [[m.role, m.text, [[i.media_type, hashlib.sha256(i.data.encode()).hexdigest()] for i in m.images]]
                     for m in request.messages],
        "temperature": request.temperature,
        "max_tokens": request.max_tokens or default_max_tokens,
        "tools": [json.dumps(tool, sort_keys=True) for tool in request.tools],
    }
    encoded = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(encoded.encode("utf-8", "surrogatepass")).hexdigest()
