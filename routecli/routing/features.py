"""Features for the learned router: every signal, a few text-shape statistics, and (optionally) words.

Generic on purpose, so `extract_signals` can grow without touching this file (retrain only):
- a number or a bool becomes a numeric feature (counts squashed with log1p, so the tenth
  code block matters less than the first);
- a string becomes categorical tokens `name=value` (comma-separated values split);
- the last user message gives shape statistics (`t:...`) and word tokens (`w:...`).
The shipped recipe does not use word tokens (train.py says why); `Recipe(words=True)` does.
They are kept verbatim rather than hashed: the vocabulary is fixed at training time (only
words seen in several training prompts), so the mapping is stable by construction, a lookup
is a plain dict hit, and the weights file shows which words matter.

Pure and fast: no I/O; text is read in a head + tail window like the signals are.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any, Mapping

from routecli.domain import Request
from routecli.routing.signals import Known, extract_signals

# The task is stated at the start and end of a prompt; the middle of a long one is pasted
# material. A 200 kB prompt then costs what a 2.5 kB one does.
HEAD_CHARS = 2_000
TAIL_CHARS = 500

_WORD = re.compile(r"[a-z][a-z0-9+#]*(?:'[a-z]+)?")
# SQL, HEVC, ESP8266: named tools and standards. `[A-Z](?<!\w[A-Z])` is `\b[A-Z]`, written so the
# regex engine can skip to capitals instead of trying every position.
_ACRONYM = re.compile(r"[A-Z](?<!\w[A-Z])[A-Z0-9]+\b")
# Open-ended asks (many good answers; a cheap model's is usually fine) against asks with one
# exact answer (a weak model's slip is a wrong answer). Chosen as general task types, not
# mined from the training prompts, so they carry over to other workloads. Entries: words,
# prefixes (ending in '*') and phrases (after '|').
ASK_KINDS = {
    "t:open_ended": "idea ideas tip tips suggest* brainstorm* recommend* advice advise plan describe essay story "
    "stories poem blog article outline overview summar* explain opinion imagine discuss creative"
    "|pros and cons|tell me about|what do you think",
    "t:exact_answer": "solve calculate compute determine find exact* correct answer prove result"
    "|how many|how much|how long|value of",
}


class _AskIndex:
    """Every ask kind in one index, so the distinct words of a prompt are looked at once."""

    def __init__(self, kinds: dict[str, str]) -> None:
        self.exact: dict[str, str] = {}
        self.by_prefix: dict[str, str] = {}
        self.phrases: list[tuple[str, str, str]] = []  # (first word, phrase, kind)
        for kind, spec in kinds.items():
            entries, *phrases = spec.split("|")
            for entry in entries.split():
                if entry.endswith("*"):
                    self.by_prefix[entry[:-1]] = kind
                else:
                    self.exact[entry] = kind
            self.phrases += [(phrase.split()[0], phrase, kind) for phrase in phrases]
        self.prefixes = tuple(self.by_prefix)
        self.kinds = tuple(kinds)
        self._known = Known(self.kind)

    def kind(self, word: str) -> str:
        """The ask kind a word names, or ""."""
        kind = self.exact.get(word)
        if kind is None and word.startswith(self.prefixes):
            kind = next(k for p, k in self.by_prefix.items() if word.startswith(p))
        return kind or ""

    def counts(self, words: Mapping[str, int], low: str) -> dict[str, int]:
        found = dict.fromkeys(self.kinds, 0)
        known = self._known
        for word, n in words.items():
            kind = known[word]
            if kind:
                found[kind] += n
        for first, phrase, kind in self.phrases:
            if first in words:
                found[kind] += low.count(phrase)
        return found


_ASKS = _AskIndex(ASK_KINDS)
_SYMBOLS = re.compile(r"[{}\[\]()<>=;:/\\|*&^%$@~`_]")
_SYMBOL_BYTES = bytes(c for c in range(128) if _SYMBOLS.match(chr(c)))  # the same, for ASCII text
# Function words say nothing about the task; as features they would only add noise to reasons.
STOPWORDS = frozenset(
    "a about above after again all also am an and any are as at be because been before being below between "
    "both but by can could did do does doing down during each few for from further had has have having he "
    "her here hers him his how i if in into is it its itself just let me more most my no nor not now of off "
    "on once only or other our ours out over own same she should so some such than that the their theirs "
    "them then there these they this those through to too under until up very was we were what when where "
    "which while who whom why will with would you your yours s t don't i'm it's can't".split()
)


def squash(value: float) -> float:
    """log1p for counts; sign kept for the odd negative value."""
    return math.log1p(value) if value >= 0 else -math.log1p(-value)


Z_LIMIT = 3.0  # standardised values are clipped here: an empty or odd prompt must not extrapolate


def standardise(value: float, mean: float, scale: float) -> float:
    return max(-Z_LIMIT, min(Z_LIMIT, (value - mean) / scale))


def prior_weight(prior: Mapping[str, float], feature: str) -> float:
    """A feature's prior weight; "name=*" in the prior covers every value of that signal."""
    if feature in prior:
        return prior[feature]
    name, sep, _ = feature.partition("=")
    return prior.get(name + "=*", 0.0) if sep else 0.0


def window(text: str) -> str:
    if len(text) <= HEAD_CHARS + TAIL_CHARS:
        return text
    return text[:HEAD_CHARS] + "\n" + text[-TAIL_CHARS:]


def numeric_value(value: Any) -> float | None:
    """A signal's value as a numeric feature: a bool as 1 or 0, a finite number squashed; else None."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)) and math.isfinite(value):
        return squash(float(value))
    return None


def category_tokens(name: str, value: str) -> list[str]:
    """A string signal's categorical tokens `name=value`, one per comma-separated value."""
    return [f"{name}={part}" for part in map(str.strip, value.split(",")) if part]


def signal_features(signals: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
    """(numeric, categorical) features from a signals dict, whatever signals it holds."""
    numeric: dict[str, float] = {}
    categorical: dict[str, float] = {}
    for name, value in signals.items():
        if isinstance(value, str):
            categorical.update(dict.fromkeys(category_tokens(name, value), 1.0))
        elif (number := numeric_value(value)) is not None:
            numeric[name] = number
    return numeric, categorical


def word_tokens(tokens: list[str], bigrams: bool = False) -> set[str]:
    """Distinct `w:word` (and `w:word word`) tokens: presence, not counts, so repeating a word adds nothing."""
    found = {"w:" + token for token in tokens if token not in STOPWORDS}
    if bigrams:
        found.update(f"w:{a} {b}" for a, b in zip(tokens, tokens[1:]))
    return found


def text_stats(text: str, low: str, tokens: list[str], counts: Mapping[str, int]) -> dict[str, float]:
    """Shape and kind of ask, not topic: code-like punctuation, digits, named things, word length
    (`low` is text.lower(), `tokens` its words, `counts` theirs).

    Letter-case and word-variety ratios were tried and dropped: on a one-line prompt they are
    noise (every capital is a sentence start), and they added nothing in cross-validation."""
    size = max(1, len(text))
    if text.isascii():  # most prompts: the symbols and digits are counted by deleting them, in C
        raw = text.encode("ascii")
        symbols = len(raw) - len(raw.translate(None, _SYMBOL_BYTES))
        digits = len(raw) - len(raw.translate(None, b"0123456789"))
    else:
        symbols, digits = len(_SYMBOLS.findall(text)), sum(map(text.count, "0123456789"))
    stats = {kind: squash(n) for kind, n in _ASKS.counts(counts, low).items()}
    stats["t:lines"] = squash(text.count("\n"))
    stats["t:acronyms"] = squash(len(_ACRONYM.findall(text)))
    stats["t:symbol_ratio"] = symbols / size
    stats["t:digit_ratio"] = digits / size
    # Shrunk toward a typical 4.5 letters by ten imaginary words, so "hi" is not "short words".
    stats["t:word_len"] = (sum(map(len, tokens)) + 45) / (len(tokens) + 10)
    return stats


def text_features(request: Request) -> tuple[dict[str, float], list[str], Counter[str]]:
    """(the `t:` statistics, the words, their counts) of the last user message, in its window."""
    text = window(request.last_user_text)
    low = text.lower()
    tokens = _WORD.findall(low)
    counts = Counter(tokens)
    return text_stats(text, low, tokens, counts), tokens, counts


def _base(request: Request) -> tuple[dict[str, float], dict[str, float], list[str], Counter[str], dict[str, Any]]:
    """(numeric, categorical, the windowed prompt's words, their counts, signals)."""
    signals = extract_signals(request)
    numeric, categorical = signal_features(signals)
    stats, tokens, counts = text_features(request)
    numeric.update(stats)
    return numeric, categorical, tokens, counts, signals


def featurize(request: Request) -> tuple[dict[str, float], set[str], dict[str, Any]]:
    """(numeric features, sparse binary tokens, signals): every token, for training."""
    numeric, categorical, tokens, _, signals = _base(request)
    return numeric, set(categorical) | word_tokens(tokens, bigrams=True), signals


def featurize_for(
    request: Request, vocab: Mapping[str, float], firsts: set[str], use_words: bool = True
) -> tuple[dict[str, float], set[str], dict[str, Any]]:
    """`featurize` limited to the tokens a model knows: the same features, without building
    every word pair of a long prompt (a pair is formed only after a known first word).
    use_words=False: the model has no word tokens, so none are looked up."""
    numeric, categorical, tokens, counts, signals = _base(request)
    sparse = set(categorical)  # few, and one the model never saw still has its prior
    if not use_words:
        return numeric, sparse, signals
    sparse.update(key for key in ("w:" + t for t in counts if t not in STOPWORDS) if key in vocab)
    if firsts:
        pairs = (f"w:{a} {b}" for a, b in zip(tokens, tokens[1:]) if a in firsts)
        sparse.update(key for key in pairs if key in vocab)
    return numeric, sparse, signals


# ---------------------------------------------------------------- words for people

_NUMERIC_WORDS = {
    "code_blocks": "code blocks",
    "code_words": "code words",
    "file_refs": "file references",
    "tool_results": "tool results",
    "vision_words": "vision words",
    "words_per_sentence": "words per sentence",
    "t:open_ended": "open-ended asks",
    "t:exact_answer": "exact-answer asks",
    "t:lines": "lines",
    "t:acronyms": "acronyms",
    "t:symbol_ratio": "code-like symbols",
    "t:digit_ratio": "digits",
    "t:word_len": "long words",
}
_CATEGORY_WORDS = {
    "code_langs": "code ({})",
    "reasoning": "reasoning words: {}",
    "simple": "simple task: {}",
    "domain": "domain: {}",
}


def describe(key: str, raw: Any, above_average: bool) -> str:
    """A feature as a reason a user can read: "code (python)", "word 'optimize'", "long prompt"."""
    if key.startswith("w:"):
        word = key[2:]
        return f"words '{word}'" if " " in word else f"word '{word}'"
    if "=" in key:
        name, _, value = key.partition("=")
        return _CATEGORY_WORDS.get(name, name.replace("_", " ") + ": {}").format(value)
    if key in ("chars", "est_tokens") and isinstance(raw, int):
        tokens = max(1, raw // 4) if key == "chars" else raw
        return f"{'long' if above_average else 'short'} prompt (~{tokens:,} tokens)"
    if isinstance(raw, bool):
        return key.replace("_", " ") if raw else f"no {key.replace('_', ' ')}"
    label = _NUMERIC_WORDS.get(key, key.replace("_", " "))
    shown = f" ({raw:g})" if isinstance(raw, (int, float)) and not key.startswith("t:") else ""
    return f"{'more' if above_average else 'fewer'} {label} than usual{shown}"
