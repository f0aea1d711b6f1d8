"""Cheap scans of free text for the answer checks (routing/assess.py): phrase regexes that skip
ahead to where a phrase can start, case folding that matches as (?i) does, and which script and
which Latin-script language a text is written in. Pure functions over strings.
"""

from __future__ import annotations

import re
from collections import Counter


def word_start(*alternatives: str) -> str:
    """Regex alternatives matched where a word starts, as `\\b(?:a|b|...)` would, but grouped by
    first letter: a pattern that opens with letters lets the regex engine skip to where they
    occur, while one opening with \\b is tried at every position (~4x slower on an answer)."""
    groups: dict[str, list[str]] = {}
    for alternative in alternatives:
        groups.setdefault(alternative[0], []).append(alternative[1:])
    return "|".join(f"{first}(?<!\\w{first})(?:{'|'.join(rests)})" for first, rests in groups.items())


# What str.lower() leaves that a case-insensitive regex matches to an ASCII letter: with these
# mapped, a lowercase pattern on fold(text) matches where the same pattern with (?i) on text does.
FOLD = {0x130: "i", 0x131: "i", 0x17F: "s"}  # İ, dotless ı, long ſ


def fold(text: str) -> str:
    # most text is ASCII, which holds none of them: translate() would look up every character
    return text.lower() if text.isascii() else text.translate(FOLD).lower()


# Scripts told apart by Unicode ranges; Latin-script languages by their commonest words.
SCRIPTS = {
    "latin": re.compile(r"[A-Za-z\u00c0-\u024f]"),
    "cyrillic": re.compile(r"[\u0400-\u04ff]"),
    "cjk": re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]"),  # kana, han, hangul
    "arabic": re.compile(r"[\u0600-\u06ff]"),
    "greek": re.compile(r"[\u0370-\u03ff]"),
    "hebrew": re.compile(r"[\u0590-\u05ff]"),
    "devanagari": re.compile(r"[\u0900-\u097f]"),
    "thai": re.compile(r"[\u0e00-\u0e7f]"),
}
STOPWORDS = {
    "en": frozenset("the and is are of to that with for this what how why which you it can from".split()),
    "de": frozenset("der die das und ist nicht ich sie mit für ein eine auf wie warum den dem zu von".split()),
    "fr": frozenset("le la les et est une des pour dans que qui pas avec sur vous pourquoi du au".split()),
    "es": frozenset("el la los las y es una que para por con del como pero está porque al".split()),
}
_LETTERS = "a-zà-ÿ"  # a word, for the language guess, is a longest run of these


def _stopword_regex() -> re.Pattern[str]:
    """Every language's common words, each only as a whole word: findall then yields just
    these (a few dozen in an answer) rather than every word of the text."""
    groups: dict[str, list[str]] = {}
    for word in sorted({w for stop in STOPWORDS.values() for w in stop}, key=len, reverse=True):
        groups.setdefault(word[0], []).append(re.escape(word[1:]))
    return re.compile("|".join(f"{first}(?<![{_LETTERS}]{first})(?:{'|'.join(rests)})(?![{_LETTERS}])"
                               for first, rests in groups.items()))


_STOPWORD = _stopword_regex()
_LANGUAGES_OF = {word: tuple(lang for lang, stop in STOPWORDS.items() if word in stop)
                 for stop in STOPWORDS.values() for word in stop}
# The same words for ASCII text, as bytes: a word there is a run of a-z, everything else a space.
_ASCII_WORDS = bytes(c if 97 <= c <= 122 else 32 for c in range(256))
_LANGUAGES_OF_BYTES = {word.encode(): langs for word, langs in _LANGUAGES_OF.items() if word.isascii()}
_STOPWORD_BYTES = frozenset(_LANGUAGES_OF_BYTES)


def script_counts(text: str) -> dict[str, int]:
    """Letters of each script, CJK weighted."""
    counts = {name: len(pattern.findall(text)) for name, pattern in SCRIPTS.items()}
    counts["cjk"] *= 3  # one CJK character carries about what three Latin letters do
    return counts


def dominant(counts: dict[str, int]) -> str:
    """The script of at least 80% of 20+ letters, or ""."""
    total = sum(counts.values())
    if total < 20:
        return ""
    name = max(counts, key=lambda key: counts[key])
    return name if counts[name] >= 0.8 * total else ""


def latin_language(low: str) -> str:
    """The language (en, de, fr, es) whose common words lowercase text uses 3x more than any other's, or ""."""
    hits = dict.fromkeys(STOPWORDS, 0)
    if low.isascii():  # most text: every word cut out and counted in C, only the common ones looked at here
        counts = Counter(low.encode("ascii").translate(_ASCII_WORDS).split())
        for word in _STOPWORD_BYTES.intersection(counts):
            for lang in _LANGUAGES_OF_BYTES[word]:
                hits[lang] += counts[word]
    else:
        for found in _STOPWORD.findall(low):
            for lang in _LANGUAGES_OF[found]:
                hits[lang] += 1
    ranked = sorted(hits.items(), key=lambda item: -item[1])
    (best, n), (_, runner_up) = ranked[0], ranked[1]
    return best if n >= 3 and n >= 3 * max(runner_up, 1) else ""
