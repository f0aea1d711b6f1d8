"""Signals: named, explainable facts about a request, extracted in microseconds.

Pure (no I/O). Classifiers turn these into a score; every name can show up in a
decision's reasons, so names are stable: a learned model's weights refer to them.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Callable, Iterable, Iterator, NamedTuple

from routecli.domain import Request

# Lexical signals read the head and tail of a prompt: the task is stated there, while the
# middle of a long prompt is pasted material. This keeps a 200 kB prompt as cheap as a 10 kB one;
# the length signal still sees the whole size.
HEAD_CHARS = 3_000
TAIL_CHARS = 1_000

# A word with the dots, slashes and the like inside it (file.py, c++, don't), less any it ends with:
# the longest run of these that ends in a word character, /, + or #.
_TOKEN = re.compile(r"\w[\w/+#]*(?:[.'-]+[\w/+#]+)*")
_CODE_FENCE = re.compile(r"```([\w+#-]+)?")
# an operator between a number and a number, bracket or letter, or a maths symbol; it opens with the
# class of both first characters, so the regex engine can skip to where one occurs
_MATH_OP = re.compile(r"[\d√∑∫π≤≥≠](?:(?<=\d)\s*[-+*/^=<>]\s*[\d(a-z]|(?<=[√∑∫π≤≥≠]))")
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
    """Keyword families compiled into one index: whole words, prefixes (tried together in one
    C-level `startswith(all_prefixes)`), and phrases by their first word, since a phrase is looked
    for only when its first word occurs at all."""

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

    def families(self, token: str) -> tuple[str, ...]:
        """The families a token belongs to (each once): as a whole word, then by each prefix it starts with."""
        names = list(self.exact.get(token, ()))
        if token.startswith(self.prefixes):
            names += [name for prefix in self.prefixes if token.startswith(prefix) for name in self.by_prefix[prefix]]
        return tuple(dict.fromkeys(names))

    def phrase_hits(self, tokens: Iterable[str], text: str) -> Iterator[tuple[str, str, int]]:
        """(family, phrase, times) of each phrase in `text` whose first word is among `tokens`."""
        for first in self.firsts.intersection(tokens):
            for phrase, name in self.phrases[first]:
                n = text.count(phrase)
                if n:
                    yield name, phrase, n


_LEXICON = _Lexicon(_FAMILIES)
_DOMAIN_LEXICON = _Lexicon(DOMAINS)
TokenInfo = tuple[tuple[str, ...], tuple[str, ...], bool, bool]  # (families, domains, a number, a file name)


def token_info(token: str) -> TokenInfo | None:
    """What a token tells, or None for most words, which tell nothing."""
    families, domains = _LEXICON.families(token), _DOMAIN_LEXICON.families(token)
    number = token[0].isdigit()
    file_ref = not number and "." in token and token.rsplit(".", 1)[1] in _FILE_EXTENSIONS
    return (families, domains, number, file_ref) if families or domains or number or file_ref else None


# one dict hit per distinct token of a prompt instead of trying every prefix (~40 for the domains)
_INFO = Known(token_info)


class Part(NamedTuple):
    """One part of a request (the last user message, the system prompt, the earlier turns), read once."""

    counts: dict[str, int]  # its tokens
    found: dict[str, dict[str, int]]  # family -> {token or phrase: times}, only families that occur
    domains: dict[str, int]  # domain -> times its words occur (its phrases are counted over every part)
    numbers: int
    file_refs: int


def read_part(low: str) -> Part:
    counts = _token_counts(low)
    found: dict[str, dict[str, int]] = {}
    domains: dict[str, int] = {}
    numbers = file_refs = 0
    info_of = _INFO
    for token, n in counts.items():
        info = info_of[token]
        if info is None:
            continue
        families, in_domains, number, file_ref = info
        for name in families:
            found.setdefault(name, {})[token] = n
        for name in in_domains:
            domains[name] = domains.get(name, 0) + n
        if number:
            numbers += n
        elif file_ref:
            file_refs += n
    for name, phrase, n in _LEXICON.phrase_hits(counts, low):
        found.setdefault(name, {})[phrase] = n
    return Part(counts, found, domains, numbers, file_refs)


def _scan_text(text: str, head: int = HEAD_CHARS, tail: int = TAIL_CHARS) -> str:
    if len(text) <= head + tail:
        return text.lower()
    return (text[:head] + "\n" + text[-tail:]).lower()


def _token_counts(low: str) -> dict[str, int]:
    return Counter(_TOKEN.findall(low))


def _merged(parts: list[Part]) -> dict[str, dict[str, int]]:
    """Every part's family hits added up (one part: its own)."""
    if len(parts) == 1:
        return parts[0].found
    merged: dict[str, dict[str, int]] = {}
    for part in parts:
        for name, hits in part.found.items():
            into = merged.setdefault(name, {})
            for key, n in hits.items():
                into[key] = into.get(key, 0) + n
    return merged


def _total(found: dict[str, dict[str, int]], family: str) -> int:
    hits = found.get(family)
    return sum(hits.values()) if hits else 0


def _names(found: dict[str, dict[str, int]], family: str) -> str:
    hits = found.get(family)
    return ",".join(sorted(hits)) if hits else ""


def _domain(user: Part, rest: Part | None, low: str) -> str:
    """The domain whose words and phrases occur most (the first named on a tie), or "". Its words are
    counted in the last user message and the earlier turns (not the system prompt); its phrases in all
    of `low`, where their first word is one of those words."""
    scores = dict(user.domains)
    tokens: Iterable[str] = user.counts
    if rest is not None:
        for name, n in rest.domains.items():
            scores[name] = scores.get(name, 0) + n
        tokens = set(user.counts).union(rest.counts)
    for name, _, n in _DOMAIN_LEXICON.phrase_hits(tokens, low):
        scores[name] = scores.get(name, 0) + n
    best, top = "", 0
    for name in _DOMAIN_LEXICON.names:
        if scores.get(name, 0) > top:
            best, top = name, scores[name]
    return best


def _sentences(text: str) -> int:
    return max(1, len(_SENTENCE_END.findall(text)) + (text.rstrip()[-1:] in ".?!"))


def _messages(request: Request) -> tuple[int, int, int]:
    """(user turns, tool results, images)."""
    turns = tool_results = images = 0
    for message in request.messages:
        if message.role == "user":
            turns += 1
        elif message.role == "tool":
            tool_results += 1
        if message.images:
            images += len(message.images)
    return turns, tool_results, images


def extract_signals(request: Request) -> dict[str, float | int | bool | str]:
    # Each part is read once: the last user message fully (within the scan window), the
    # system prompt and earlier turns in a smaller window, since they weigh less.
    user_low = _scan_text(request.last_user_text)
    user = read_part(user_low)
    system_low = _scan_text(request.system, 1_000, 500) if request.system else ""
    system = read_part(system_low) if system_low else None
    earlier = "\n".join([m.text for m in request.messages[:-1]]) if len(request.messages) > 1 else ""
    earlier_low = _scan_text(earlier, 1_000, 500) if earlier else ""
    rest = read_part(earlier_low) if earlier_low else None
    every = _merged([part for part in (user, system, rest) if part is not None])
    low = "\n".join(filter(None, (system_low, earlier_low, user_low)))
    fences = _CODE_FENCE.findall(low)
    size = len(request.all_text())
    sentences = _sentences(user_low)
    turns, tool_results, images = _messages(request)
    return {
        "chars": size,
        "est_tokens": max(1, size // 4),
        "code_blocks": len(fences) // 2 or (1 if fences else 0),
        "code_langs": ",".join(sorted({lang for lang in fences if lang})),
        "code_words": _total(every, "code"),
        "math": _total(every, "math") + len(_MATH_OP.findall(user_low)),
        "numbers": user.numbers + (rest.numbers if rest else 0),
        "reasoning": _names(every, "reasoning"),
        "steps": _total(every, "steps") + len(_STEP_LINE.findall(user_low)),
        "constraints": _total(user.found, "constraints"),
        "simple": _names(user.found, "simple"),
        "questions": user_low.count("?"),
        "sentences": sentences,
        "words_per_sentence": round(sum(user.counts.values()) / sentences, 1),
        "turns": turns,
        "tool_results": tool_results,
        "tools": len(request.tools),
        "images": images,
        "vision_words": _total(user.found, "vision"),
        "agentic": bool(request.tools) or bool(system and system.found.get("agentic")),
        "file_refs": user.file_refs + (rest.file_refs if rest else 0),
        "domain": _domain(user, rest, low),
    }
