"""Signals: named, explainable facts about a request, extracted in microseconds.

Pure (no I/O). Classifiers turn these into a score; every name can show up in a
decision's reasons, so names are stable: a learned model's weights refer to them.
"""

from __future__ import annotations

import re

from routecli.domain import Request

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
