"""The first classifier: a few explainable signals, a logistic score, thresholds to a tier.

Pure and fast (no I/O). Each signal that moves the score leaves a reason in the verdict.
The learned classifier (a later issue) replaces the hand-set weights, not this shape.
"""

from __future__ import annotations

import math
import re

from routecli.domain import Request, Verdict

NAME = "rules"
VERSION = "rules-1"

# Scanning is capped so a 1 MB prompt costs the same as a 20 kB one: the head of a
# prompt carries the task; the length signal still sees the whole size.
SCAN_CHARS = 20_000

_REASONING = re.compile(
    r"\b(prove|proof|derive|derivation|step[- ]by[- ]step|architect\w*|design (?:a|an|the)\b|"
    r"trade-?offs?|security audit|threat model|migrat\w+|optimi[sz]\w*|refactor\w*|debug\w*|"
    r"analy[sz]e|analysis|compare|evaluate|why does|explain why|reason about|complexity|"
    r"algorithm\w*|concurren\w+|race condition|distributed|vulnerabilit\w+|show (?:the |your )?(?:steps|work))\b",
    re.IGNORECASE,
)
_SIMPLE = re.compile(
    r"\b(translate|rename|reformat|format (?:this|the)|fix (?:the )?typos?|spell(?:ing)?|"
    r"summari[sz]e|tl;?dr|capital of|define|definition of|synonym|what is the|who (?:is|was)|"
    r"convert|list (?:of|the)|add type hints|uppercase|lowercase)\b",
    re.IGNORECASE,
)
_CODE_FENCE = re.compile(r"```(\w+)?")
_CODE_WORDS = re.compile(
    r"\b(python|javascript|typescript|rust|golang|java|c\+\+|sql|bash|function|class|regex|"
    r"stack trace|traceback|compile|api|unit tests?)\b|def \w+\(|=>|#include|SELECT .+ FROM",
    re.IGNORECASE,
)
_MATH = re.compile(
    r"\b(integral|derivative|equation|theorem|lemma|probability|matrix|eigen\w*|"
    r"solve for|calculate|prime|modulo|polynomial|limit of)\b|[=^√∑∫]\s*\d|\d\s*[-+*/^]\s*\d",
    re.IGNORECASE,
)

_BIAS = -1.6
_WEIGHTS = {"reasoning": 0.9, "code": 0.6, "math": 0.7, "simple": -0.9, "turns": 0.3, "image": 0.4, "length": 0.5}


def extract_signals(request: Request) -> dict[str, float | int | bool | str]:
    text = request.all_text()
    head = text[:SCAN_CHARS]
    fences = _CODE_FENCE.findall(head)
    reasoning = sorted({m.lower() for m in _REASONING.findall(head)})
    simple = sorted({m.lower() for m in _SIMPLE.findall(request.last_user_text[:SCAN_CHARS])})
    return {
        "chars": len(text),
        "est_tokens": max(1, len(text) // 4),
        "code_blocks": len(fences) // 2 or (1 if fences else 0),
        "code_langs": ",".join(sorted({lang.lower() for lang in fences if lang})),
        "code_words": len(_CODE_WORDS.findall(head)),
        "math": len(_MATH.findall(head)),
        "reasoning": ",".join(reasoning),
        "simple": ",".join(simple),
        "turns": len(request.messages),
        "images": sum(len(m.images) for m in request.messages),
    }


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
