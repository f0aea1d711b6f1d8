"""The first classifier: a few explainable signals, a logistic score, thresholds to a tier.

Pure and fast (no I/O). Each signal that moves the score leaves a reason in the verdict.
The learned classifier (a later issue) replaces the hand-set weights, not this shape.
"""

from __future__ import annotations

import math

from routecli.domain import Request
from routecli.routing.signals import extract_signals

NAME = "rules"
VERSION = "rules-1"

_BIAS = -1.6
_WEIGHTS = {"reasoning": 0.9, "code": 0.6, "math": 0.7, "simple": -0.9, "turns": 0.3, "image": 0.4, "length": 0.5}


def _contributions(signals: dict) -> list[tuple[str, float]]:
    """(reason, logit change) for every signal that fired."""
    out: list[tuple[str, float]] = []
    reasoning = [w for w in str(signals["reasoning"]).split(",") if w]
    if reasoning:
        out.append((f"reasoning words: {', '.join(reasoning[:4])}", _WEIGHTS["reasoning"] * min(len(reasoning), 3)))
    code = int(signals["code_blocks"]) + min(int(signals["code_words"]), 2)
    if code:
        langs = f" ({signals['code_langs']})" if signals["code_langs"] else ""
        out.append((f"code{langs}", _WEIGHTS["code"] * min(code, 3)))
    if signals["math"]:
        out.append(("math", _WEIGHTS["math"] * min(int(signals["math"]), 2)))
    simple = [w for w in str(signals["simple"]).split(",") if w]
    if simple and not (reasoning or signals["math"]):
        out.append((f"simple task: {', '.join(simple[:3])}", _WEIGHTS["simple"]))
    if int(signals["turns"]) > 2:
        out.append((f"{signals['turns']} turns", _WEIGHTS["turns"]))
    if signals["images"]:
        out.append(("image attached", _WEIGHTS["image"]))
    tokens = int(signals["est_tokens"])
    if tokens > 400:
        out.append((f"long prompt (~{tokens:,} tokens)", _WEIGHTS["length"] * math.log2(tokens / 400 + 1)))
    return out


def score_request(request: Request) -> tuple[float, tuple[str, ...], dict]:
    signals = extract_signals(request)
    contributions = _contributions(signals)
    logit = _BIAS + sum(change for _, change in contributions)
    score = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, logit))))
    reasons = tuple(reason for reason, _ in sorted(contributions, key=lambda c: -abs(c[1])))
    return score, reasons or ("short plain prompt",), signals


def tier_for(score: float, tier_order: tuple[str, ...], thresholds: dict[str, float]) -> str:
    chosen = tier_order[0]
    for tier in tier_order[1:]:
        if score >= thresholds[tier]:
            chosen = tier
    return chosen
