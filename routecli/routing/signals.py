"""Signals: named, explainable facts about a request, extracted in microseconds.

Pure (no I/O). Classifiers turn these into a score; every name can show up in a
decision's reasons, so names are stable: a learned model's weights refer to them.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Callable

from routecli.domain import Request

# Lexical signals read the head and tail of a prompt: the task is stated there, while the
# middle of a long prompt is pasted material. This keeps a 200 kB prompt as cheap as a 10 kB one;
# the length signal still sees the whole size.
HEAD_CHARS = 3_000
TAIL_CHARS = 1_000

# A word with the dots, slashes and the like inside it (file.py, c++, don't), less any it ends with:
# the longest run of these that ends in a word character, /, + or #.
_TOKEN = re.compile(r"\w(?:[\w./+#'-]*[\w/+#])?")
_CODE_FENCE = re.compile(r"```([\w+#-]+)?")
_MATH_OP = re.compile(r"\d\s*[-+*/^=<>]\s*[\d(a-z]|[√∑∫π≤≥≠]")
_STEP_LINE = re.compile(r"(?m)^\s*(?:\d+[.)]|[-*•])\s+")
_SENTENCE_END = re.compile(r"[.?!][ \n]")  # one scan for ". ", "? ", "! " and the three before a line break


def _words(*entries: str) -> frozenset[str]:
    return frozenset(word for entry in entries for word in entry.split())


# Keyword families: whole words, word prefixes (ending in '*') and phrases (with spaces).
_FAMILIES: dict[str, tuple[str, ...]] = {
    "reasoning": (
        "prove proof derive derivation architect* trade-off* tradeoff* migrat* optimi* refactor* debug* "
        "analyze analyse analysis compare evaluate complexity algorithm* concurren* distributed vulnerabilit*",
        "step by step|step-by-step|design a|design an|design the|security audit|threat model|why does|"
        "explain why|reason about|race condition|show the steps|show your work|show your steps",
    ),
    "simple": (
        "translate rename reformat summarize summarise tldr define synonym synonyms convert uppercase "
        "lowercase spelling",
        "tl;dr|format this|format the|fix the typo|fix typos|fix the typos|capital of|definition of|what is the|"
        "who is|who was|list of|list the|add type hints",
    ),
    "code": (
        "python javascript typescript rust golang java c++ sql bash function class regex traceback compile "
        "api def const async await import",
        "stack trace|unit test|#include|select * from",
    ),
    "math": (
        "integral derivative equation theorem lemma probability matrix eigen* polynomial modulo prime "
        "calculate compute sum",
        "solve for|limit of",
    ),
    "steps": ("first firstly then next finally", "after that"),
    "constraints": (
        "must should shouldn't without don't never exactly only ensure avoid",
        "do not|at least|at most|no more than|make sure",
    ),
    "vision": ("image picture photo screenshot diagram chart figure drawing", ""),
    "agentic": (
        "autonomous scratchpad",
        "thought:|action:|observation:|you are an agent|you are an ai agent|you have access to|available tools|tool call|function calling|"
        "plan and execute",
    ),
}
DOMAINS: dict[str, tuple[str, ...]] = {
    "medical": ("symptom* diagnos* patient* dosage dose medication* disease* clinical therap* surgery doctor*", ""),
    "legal": ("contract* lawsuit* legal attorney* court liabilit* clause* statute* gdpr copyright compliance", ""),
    "financial": ("invest* stock stocks portfolio* tax taxes revenue profit* loan* mortgage* accounting financ*",
                  "interest rate|cash flow"),
    "scientific": ("physics chemistr* biolog* quantum molecul* experiment* hypothes* protein* genom* enzyme*", ""),
    "creative": ("story stories poem* lyrics novel fiction screenplay haiku slogan* creative", "character arc"),
    "technical": ("server* database* kubernetes docker deploy* latency linux configur* cloud network*", ""),
    "educational": ("teach* student* homework lesson* beginner* eli5 curriculum quiz*", "explain to"),
}
_FILE_EXTENSIONS = _words(
    "py js ts tsx jsx rs go java c h cpp hpp cs rb php swift kt sql sh yaml yml toml json md html css txt csv ipynb"
)


KNOWN_TOKENS = 50_000  # tokens whose families a lexicon remembers (a few MB at most)
KNOWN_LENGTH = 40  # longer tokens (URLs, pasted blobs) are looked up afresh: they rarely recur


class Known(dict):
    """work(token), remembered for tokens up to KNOWN_LENGTH characters while there is room: words
    recur from prompt to prompt, and a dict hit costs less than working one out again."""

    def __init__(self, work: Callable[[str], Any]) -> None:
        super().__init__()
        self.work = work

    def __missing__(self, token: str) -> Any:
        value = self.work(token)
        if len(token) <= KNOWN_LENGTH and len(self) < KNOWN_TOKENS:
            self[token] = value
        return value


class _Lexicon:
    """Every keyword family compiled into one index, so a prompt's tokens are read once.

    Python pays per call, not per byte: each distinct token's families are worked out once per
    process (one C-level `startswith(all_prefixes)`), and a phrase is counted only when its
    first word occurs at all.
    """

    def __init__(self, families: dict[str, tuple[str, ...]]) -> None:
        self.exact: dict[str, list[str]] = {}
        self.by_prefix: dict[str, list[str]] = {}
        self.phrases: dict[str, list[tuple[str, str]]] = {}  # first word -> [(phrase, family)]
        for name, (words, phrases) in families.items():
            for entry in words.split():
                table = self.by_prefix if entry.endswith("*") else self.exact
                table.setdefault(entry.rstrip("*"), []).append(name)
            for phrase in filter(None, phrases.split("|")):
                first = re.search(r"\w+", phrase)
                self.phrases.setdefault(first.group() if first else phrase, []).append((phrase, name))
        self.firsts = frozenset(self.phrases)
        self.prefixes = tuple(self.by_prefix)
        self.names = tuple(families)
        self._known = Known(self.families)  # one dict hit instead of trying every prefix (~40 for the domains)

    def families(self, token: str) -> tuple[str, ...]:
        """The families a token belongs to: as a whole word, then by each prefix it starts with."""
        names = list(self.exact.get(token, ()))
        if token.startswith(self.prefixes):
            names += [name for prefix in self.prefixes if token.startswith(prefix) for name in self.by_prefix[prefix]]
        return tuple(names)

    def hits(self, counts: dict[str, int], text: str) -> dict[str, dict[str, int]]:
        found: dict[str, dict[str, int]] = {name: {} for name in self.names}
        known = self._known
        for token, n in counts.items():
            for name in known[token]:
                found[name][token] = n
        for first in self.firsts.intersection(counts):  # a phrase is looked for only if its first word occurs
            for phrase, name in self.phrases[first]:
                n = text.count(phrase)
                if n:
                    found[name][phrase] = n
        return found


_LEXICON = _Lexicon(_FAMILIES)
_DOMAIN_LEXICON = _Lexicon(DOMAINS)


def _scan_text(text: str, head: int = HEAD_CHARS, tail: int = TAIL_CHARS) -> str:
    if len(text) <= head + tail:
        return text.lower()
    return (text[:head] + "\n" + text[-tail:]).lower()


def _merge(parts: list[dict[str, dict[str, int]]]) -> dict[str, dict[str, int]]:
    merged: dict[str, dict[str, int]] = {}
    for part in parts:
        for name, hits in part.items():
            into = merged.setdefault(name, {})
            for key, n in hits.items():
                into[key] = into.get(key, 0) + n
    return merged


def _token_counts(low: str) -> dict[str, int]:
    return Counter(_TOKEN.findall(low))


def _file_refs(counts: dict[str, int]) -> int:
    return sum(
        n for token, n in counts.items()
        if "." in token and token.rsplit(".", 1)[1] in _FILE_EXTENSIONS and not token[0].isdigit()
    )


def _domain(counts: dict[str, int], low: str) -> str:
    scores = {name: sum(hits.values()) for name, hits in _DOMAIN_LEXICON.hits(counts, low).items()}
    best = max(scores, key=lambda name: scores[name])
    return best if scores[best] else ""


def _question_shape(text: str, counts: dict[str, int]) -> dict[str, float | int]:
    ends = len(_SENTENCE_END.findall(text))
    sentences = max(1, ends + (text.rstrip()[-1:] in ".?!"))
    return {"questions": text.count("?"), "sentences": sentences,
            "words_per_sentence": round(sum(counts.values()) / sentences, 1)}


def extract_signals(request: Request) -> dict[str, float | int | bool | str]:
    text = request.all_text()
    # Each part is read once: the last user message fully (within the scan window), the
    # system prompt and earlier turns in a smaller window, since they weigh less.
    user_low = _scan_text(request.last_user_text)
    system_low = _scan_text(request.system or "", 1_000, 500)
    earlier = "\n".join(m.text for m in request.messages[:-1])
    earlier_low = _scan_text(earlier, 1_000, 500)
    user_counts = _token_counts(user_low)
    user = _LEXICON.hits(user_counts, user_low)
    system = _LEXICON.hits(_token_counts(system_low), system_low) if system_low else {}
    rest_counts = _token_counts(earlier_low) if earlier_low else {}
    extra = [part for part in (system, _LEXICON.hits(rest_counts, earlier_low) if rest_counts else {}) if part]
    family = _merge([user, *extra]) if extra else user  # one message: nothing to add up
    counts = dict(user_counts)
    for token, n in rest_counts.items():
        counts[token] = counts.get(token, 0) + n
    low = "\n".join(filter(None, (system_low, earlier_low, user_low)))
    fences = _CODE_FENCE.findall(low)
    return {
        "chars": len(text),
        "est_tokens": max(1, len(text) // 4),
        "code_blocks": len(fences) // 2 or (1 if fences else 0),
        "code_langs": ",".join(sorted({lang for lang in fences if lang})),
        "code_words": sum(family["code"].values()),
        "math": sum(family["math"].values()) + len(_MATH_OP.findall(user_low)),
        "numbers": sum(n for token, n in counts.items() if token[0].isdigit()),
        "reasoning": ",".join(sorted(family["reasoning"])),
        "steps": sum(family["steps"].values()) + len(_STEP_LINE.findall(user_low)),
        "constraints": sum(user["constraints"].values()),
        "simple": ",".join(sorted(user["simple"])),
        **_question_shape(user_low, user_counts),
        "turns": sum(1 for m in request.messages if m.role == "user"),
        "tool_results": sum(1 for m in request.messages if m.role == "tool"),
        "tools": len(request.tools),
        "images": sum(len(m.images) for m in request.messages),
        "vision_words": sum(user["vision"].values()),
        "agentic": bool(request.tools) or bool(system.get("agentic")),
        "file_refs": _file_refs(counts),
        "domain": _domain(counts, low),
    }
