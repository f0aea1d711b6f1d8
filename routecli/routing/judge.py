"""Phase 2: a small model judges requests whose phase-1 score is ambiguous.

Pure parts only: the judge's prompt, parsing its JSON answer, and the cache key. The engine
makes the call (with its own short timeout), caches the answer in the ledger, and keeps the
phase-1 decision whenever the judge fails, says so, or answers something unusable.
"""

from __future__ import annotations

import hashlib
import json
import re

from routecli.domain import Message, Request
from routecli.errors import RoutecliError

# The judge sees the end of the conversation only: enough to judge difficulty, cheap to send.
EXCERPT_CHARS = 4_000

SYSTEM = (
    "You are a router. Decide which model tier should answer the user's request: the cheapest tier "
    "that will answer it well. Tiers, cheapest first: {tiers}. A strong tier is needed for multi-step "
    "reasoning, proofs, non-trivial code, careful analysis or expert domains; simple lookups, rewording, "
    "formatting, translation and short factual answers belong in the cheapest tier.\n"
    'Answer with one JSON object and nothing else: {{"tier": "<one of: {tiers}>", "reason": "<a few words>"}}'
)


class JudgeError(RoutecliError):
    """The judge's answer could not be used; the phase-1 decision stands."""


def in_band(score: float, band: tuple[float, float]) -> bool:
    low, high = band
    return low <= score <= high


def cache_key(request: Request) -> str:
    """A hash of the last two messages (role and text): what the judge actually decides on."""
    tail = [(m.role, m.text) for m in request.messages[-2:]]
    return hashlib.sha256(json.dumps(tail, ensure_ascii=False).encode("utf-8", "surrogatepass")).hexdigest()


def judge_request(request: Request, tier_order: tuple[str, ...], max_tokens: int = 100) -> Request:
    excerpt = "\n\n".join(f"[{m.role}] {m.text}" for m in request.messages[-2:])
    if len(excerpt) > EXCERPT_CHARS:
        excerpt = excerpt[: EXCERPT_CHARS // 2] + "\n[...]\n" + excerpt[-EXCERPT_CHARS // 2 :]
    if any(m.images for m in request.messages):
        excerpt += "\n[the request includes images]"
    return Request(
        messages=(Message("user", f"Request to route:\n<<<\n{excerpt}\n>>>"),),
        system=SYSTEM.format(tiers=", ".join(tier_order)),
        max_tokens=max_tokens,
        temperature=0.0,
    )


_JSON_OBJECT = re.compile(r"\{.*?\}", re.DOTALL)


def parse_verdict(text: str, tier_order: tuple[str, ...]) -> tuple[str, str]:
    """(tier, reason) from the judge's answer; JudgeError when it is not usable."""
    for candidate in _JSON_OBJECT.findall(text or ""):
        try:
            data = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict) and isinstance(data.get("tier"), str):
            tier = data["tier"].strip().lower()
            if tier not in tier_order:
                raise JudgeError(f"judge named tier {tier!r}, not one of {', '.join(tier_order)}")
            reason = str(data.get("reason") or "").strip()
            return tier, " ".join(reason.split())[:200]
    raise JudgeError("judge did not answer with JSON holding a tier")
