"""Near-identical prompts for the similarity cache: normalised text, char 3-gram sets, MinHash bands.

Two requests may share an answer only if everything but the last user message is identical
(the cache's scope), the numbers in that message are the same, in the same order (a changed
digit changes the answer), and the Jaccard similarity of their character 3-gram sets reaches
the threshold. MinHash bands (one-permutation hashing over crc32, so the bands are stable
across processes) find the candidates in the store without comparing against every entry.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
import zlib

from routecli.domain import ModelRef, Request

BINS = 32
BAND_ROWS = 4  # 8 bands of 4: pairs at Jaccard 0.9 are candidates with probability > 0.999
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_SPACE = re.compile(r"\s+")
_EDGE_PUNCT = " .!?;:,"
# punctuation that does not change a question's meaning; operators (+ - * / = < >) and
# decimal points do, so they stay
_SOFT_PUNCT = re.compile(r"[,;:!?\"'“”‘’«»()\[\]{}]|\.(?!\d)")
MAX_CHARS = 20_000  # longer prompts are never matched by similarity (exact cache only)


def normalise(text: str) -> str:
    text = _SOFT_PUNCT.sub(" ", unicodedata.normalize("NFKC", text).casefold())
    return _SPACE.sub(" ", text).strip(_EDGE_PUNCT)


def numbers(text: str) -> str:
    return " ".join(_NUMBER.findall(text))


def shingles(norm: str) -> set[str]:
    padded = f" {norm} "
    return {padded[i:i + 3] for i in range(len(padded) - 2)} or {padded}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def bands(grams: set[str]) -> list[str]:
    mins = [0xFFFFFFFF] * BINS
    for gram in grams:
        value = zlib.crc32(gram.encode("utf-8", "surrogatepass"))
        slot = value % BINS
        if value < mins[slot]:
            mins[slot] = value
    return [".".join(str(v) for v in mins[i:i + BAND_ROWS]) for i in range(0, BINS, BAND_ROWS)]


def scope(request: Request, ref: ModelRef, default_max_tokens: int) -> str | None:
    """What must be identical for two requests to share an answer; None: not a candidate."""
    last = request.last_user_text
    if request.temperature != 0 or request.tools or request.has_images or len(last) > MAX_CHARS:
        return None
    if not request.messages or request.messages[-1].role != "user":
        return None
    context = {
        "model": str(ref), "system": request.system or "", "max_tokens": request.max_tokens or default_max_tokens,
        "before": [[m.role, m.text] for m in request.messages[:-1]],
    }
    return hashlib.sha256(json.dumps(context, sort_keys=True).encode("utf-8", "surrogatepass")).hexdigest()


# words whose presence flips a question's meaning however alike the rest is
NEGATIONS = frozenset("not no never none nor without cannot can't don't doesn't isn't aren't wasn't won't "
                      "shouldn't wouldn't couldn't except unless".split())


def _negations(norm: str) -> list[str]:
    return [word for word in norm.split() if word in NEGATIONS]


def similarity(a: str, b: str) -> float:
    """How alike two prompts are for the cache: 0 when their numbers differ or one negates what the
    other does not, else the Jaccard of their character 3-grams."""
    na, nb = normalise(a), normalise(b)
    if numbers(na) != numbers(nb) or _negations(na) != _negations(nb):
        return 0.0
    return jaccard(shingles(na), shingles(nb))
