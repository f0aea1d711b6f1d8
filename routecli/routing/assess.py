"""Assess an answer from a cheaper tier: how likely it is good enough, and what looks wrong.

`assess(request, reply) -> Assessment(confidence, reasons)`. Pure and fast: regexes over a
bounded window of the answer, `json.loads` and `ast.parse` on bounded blocks; no I/O, no
clock, no randomness, and it never raises, whatever the text. The engine escalates one tier
when confidence falls below `escalation.threshold`.

Each check is an indicator (0..1) with a named reason; confidence is a logistic model over
them: sigmoid(BIAS + sum of WEIGHTS[name] * value). See WEIGHTS for where the numbers come from.
"""

from __future__ import annotations

import ast
import json
import math
import re
import textwrap
import warnings
from dataclasses import dataclass
from typing import Any, Mapping

from routecli.domain import Reply, Request
from routecli.routing.textscan import dominant, fold, latin_language, script_counts, word_start

# What each vendor calls "the answer hit the token cap" and "a filter stopped it", normalised:
# openai "length"/"content_filter", anthropic "max_tokens"/"refusal", gemini "MAX_TOKENS"/"SAFETY"...
_CAPPED = frozenset({"length", "max_tokens", "max_output_tokens", "model_context_window_exceeded"})
_FILTERED = frozenset({"content_filter", "refusal", "safety", "recitation", "blocklist",
                       "prohibited_content", "spii", "image_safety"})

HEAD = 1_500  # what a request asks for is stated at its start or its end
TAIL = 600
MAX_PARSE = 20_000  # characters of an answer scanned for blocks and loops, so a huge one stays cheap
MAX_PYTHON = 4_000  # characters of Python parsed per answer: ast.parse takes 0.1-0.25 ms per kB

# Logit change per indicator, and the logit of an answer where nothing looks wrong.
# Fitted by scripts/fit_assess.py (L2 logistic regression pulled toward its PRIOR, the strength
# chosen by 10-fold cross-validation grouped by prompt) on the shared Arena-Bench-V1 answers of
# the 14 non-GPT-4 models, label "GPT-4 graded it 6/10 or better". Checks that never fire there
# (finish_reason, content filters) keep their prior; rare ones (JSON, language, hedging) stay near it.
# BIAS is not the data's (about 0.45: hard prompts for 2023 models, where a clean answer is good
# 61% of the time): it makes an answer with no warning sign score 0.9, so that the 0.7 default
# escalates on one strong sign (a bare refusal, cut off, empty, looping, too short, broken code or
# JSON, wrong language; a hedge only just), while a mid-sentence ending or a missing code block
# only lower it.
BIAS = 2.2
WEIGHTS: dict[str, float] = {
    "empty": -6.01,
    "refusal": -1.77,
    "content_filter": -3.00,
    "hedging": -1.43,
    "truncated:max_tokens": -2.50,
    "truncated:unclosed_code": -2.42,
    "truncated:mid_sentence": -0.47,
    "json_invalid": -2.47,
    "code_unparseable": -2.04,
    "code_missing": -0.81,
    "too_short_for_complex": -2.16,
    "language_mismatch": -2.51,
    "repetitive": -2.17,
}


@dataclass(frozen=True, slots=True)
class Assessment:
    confidence: float  # 0..1: estimated chance the answer is good enough to keep
    reasons: tuple[str, ...]  # names of the checks that fired, strongest first


@dataclass(frozen=True, slots=True)
class Asked:
    """What a request asks of its answer (a format, code, brevity, a language): read from the
    request alone, so it can be worked out before the answer exists (serve does, while the
    upstream model answers)."""

    text: str  # the system prompt and the last user message, windowed, lowercase
    json: bool
    code: bool
    brief: bool
    complex: bool | None  # None: the router's signals were not at hand, worked out if the answer is short
    language_named: bool  # a translation, or an answer in a named language
    prose: str  # text without code spans
    latin: str  # the Latin-script language of prose, or ""


def expect(request: Request, signals: Mapping[str, Any] | None = None) -> Asked | None:
    """The request's side of the checks; None if it cannot be read (assess() then says why)."""
    try:
        text = _asked_text(request)
        prose = _CODE_SPAN.sub(" ", text)
        return Asked(text, "json" in text and bool(_JSON_ASKED.search(text)), bool(_CODE_ASKED.search(text)),
                     bool(_BREVITY.search(text)), None if signals is None else _complex(signals),
                     bool(_LANGUAGE_NAMED.search(text)), prose, latin_language(prose))
    except Exception:
        return None


def assess(request: Request, reply: Reply, *, signals: Mapping[str, Any] | None = None,
           asked: Asked | None = None) -> Assessment:
    """Confidence in reply as an answer to request; `signals` reuses the router's, `asked` the
    request's side of the checks (expect()), if at hand."""
    try:
        found = indicators(request, reply, signals, asked)
    except Exception:  # a check tripping on odd input must not cost the answer; it says so instead
        return Assessment(0.5, ("assess_failed",))
    return score(found)


def score(found: Mapping[str, float]) -> Assessment:
    logit = BIAS + sum(WEIGHTS.get(name, 0.0) * value for name, value in found.items())
    confidence = 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, logit))))
    ranked = sorted((name for name, value in found.items() if value > 0),
                    key=lambda name: (WEIGHTS.get(name, 0.0) * found[name], name))
    return Assessment(round(confidence, 4), tuple(ranked))


def indicators(request: Request, reply: Reply, signals: Mapping[str, Any] | None = None,
               asked: Asked | None = None) -> dict[str, float]:
    """Every check's value (0..1), only the ones that fired; the features the weights were fitted on."""
    text = reply.text if isinstance(reply.text, str) else ""
    if not text.strip():
        return {"empty": 1.0}
    if asked is None:
        asked = expect(request, signals)
        if asked is None:
            raise ValueError("the request could not be read")
    finish = normalise_finish_reason(reply.finish_reason)
    found: dict[str, float] = {}
    if finish == "content_filter":
        found["content_filter"] = 1.0
    # a refusal with little else; one followed by a full answer is a disclaimer (graded as usual)
    if _REFUSAL.search(fold(text[:400])) and len(text.strip()) < _REFUSAL_ONLY:
        found["refusal"] = 1.0
    # hedges in the middle of a long answer are mostly quoted or narrative ("I don't know," she said)
    if _hedged(fold(_window(text, 400, 400))):
        found["hedging"] = 1.0
    cut = _truncation(text, finish)
    if cut:
        found[cut] = 1.0
    blocks = _fenced_blocks(text)
    if asked.json and not _json_found(text, blocks):
        found["json_invalid"] = 1.0
    code_state = _python_state(blocks, asked.text)
    if code_state == "bad":
        found["code_unparseable"] = 1.0
    if asked.code and not blocks and not _INDENTED_CODE.search(text):
        found["code_missing"] = 1.0
    short = _too_short(text, asked, request)
    if short:
        found["too_short_for_complex"] = short
    if _language_mismatch(asked, text):
        found["language_mismatch"] = 1.0
    if _repetitive(text):
        found["repetitive"] = 1.0
    return found


def normalise_finish_reason(value: Any) -> str:
    """"stop" | "max_tokens" | "content_filter" | "other", or "" when the vendor said nothing."""
    if not isinstance(value, str) or not value.strip():
        return ""
    low = value.strip().lower()
    if low in _CAPPED:
        return "max_tokens"
    if low in _FILTERED:
        return "content_filter"
    return "stop" if low in ("stop", "end_turn", "stop_sequence", "eos", "finish_reason_unspecified") else "other"


def _asked_text(request: Request) -> str:
    """The system prompt and the last user message: where a format or a language is asked for."""
    parts = [request.system or "", request.last_user_text or ""]
    return _window("\n".join(part for part in parts if isinstance(part, str))).lower()


def _window(text: str, head: int = HEAD, tail: int = TAIL) -> str:
    if len(text) <= head + tail:
        return text
    return text[:head] + "\n" + text[-tail:]


# ---------------------------------------------------------------- refusals, hedges, truncation

# Searched in fold(text): lowercase, at a word start.
_REFUSAL_PHRASES = (
    r"i['’]?m sorry,? but", r"i am sorry,? but", r"i apologi[sz]e,? but", r"sorry, (?:but )?i can(?:not|['’]t)",
    r"i (?:cannot|can['’]t|can not|won['’]t|will not) (?:help|assist|provide|fulfil|comply|create|generate|"
    r"write|do that|answer|support|engage|share|continue)",
    r"i['’]?m (?:not able|unable) to", r"i am (?:not able|unable) to",
    r"as an ai(?: language model| assistant)?,? i (?:cannot|can['’]t|do not|don['’]t|am not|am unable)",
    r"i must (?:decline|refuse)", r"i['’]?m not comfortable", r"against my (?:guidelines|programming|policy)",
)
_HEDGE_PHRASES = (
    r"i['’]?m not (?:sure|certain|confident)", r"i am not (?:sure|certain|confident)", r"i don['’]?t know",
    r"i do not know", r"i can(?:not|['’]t) be (?:sure|certain)", r"i (?:might|may|could) be wrong",
    r"not 100% sure", r"i(?:['’]?m| am) unsure", r"i don['’]?t have enough information",
    r"i do not have enough information",
)
_REFUSAL = re.compile(word_start(*_REFUSAL_PHRASES))
_HEDGE = re.compile(word_start(*_HEDGE_PHRASES))
# Every hedge holds one of these: where none occurs (most answers), the regex need not run.
_HEDGE_WORDS = ("sure", "certain", "confident", "know", "wrong", "information")
_REFUSAL_ONLY = 600  # characters
_FENCE_LINE = re.compile(r"\n[ \t]{0,3}```")  # not (?m)^: a literal first character is searched far faster


def _hedged(low: str) -> bool:
    return any(word in low for word in _HEDGE_WORDS) and _HEDGE.search(low) is not None


def _truncation(text: str, finish: str) -> str:
    """The strongest sign the answer was cut off, or ""; one at most, so they do not add up."""
    if finish == "max_tokens":
        return "truncated:max_tokens"
    if (len(_FENCE_LINE.findall(text)) + text.lstrip(" \t").startswith("```")) % 2:
        return "truncated:unclosed_code"
    tail = text.rstrip()
    last_line = tail[tail.rfind("\n") + 1:]
    # a long answer whose last line is prose (5+ words) ending in a word or a comma: cut mid-sentence
    if len(tail) >= 300 and (tail[-1].isalnum() or tail[-1] in ",;(-–_") and len(last_line.split(None, 4)) >= 5:
        return "truncated:mid_sentence"
    return ""


# ---------------------------------------------------------------- JSON and code

_FENCED = re.compile(r"(?ms)^[ \t]{0,3}```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)^[ \t]{0,3}```")
_JSON_ASKED = re.compile(
    r"\b(?:(?:in|as|into|return|returns|respond with|reply with|output|valid|only|formatted as|format as)"
    r" (?:a |an |the |valid |strict )?json\b|json (?:object|format|array|only|schema|output|response))"
)
_CODE_ASKED = re.compile(
    "(?:" + word_start("write", "implement", "code", "create", "build", "give me", "show me", "generate")
    + r")\b[^.?!\n]{0,60}\b(?:function|script|program|class|code|snippet|query|regex|method)\b"
)
_INDENTED_CODE = re.compile(r"(?m)^(?: {4}|\t)\S")
_PYTHON_TAGS = frozenset({"python", "py", "python3"})
_CODE_LIKE_PYTHON = re.compile(r"(?m)^\s*(?:def \w+\(|import \w|from \S+ import )")
_BRACES = re.compile(r"(?m)[{;]\s*$")  # a line ending in { or ;: C, Rust, JS..., not Python
# Lines that are not Python but fine in a Python block: notebook magics, shell escapes, installs
_NOT_PYTHON_LINE = re.compile(r"(?m)^\s*(?:[%!$]|pip3? install|conda install|python3? -m ).*$")


def _fenced_blocks(text: str) -> list[tuple[str, str]]:
    if "```" not in text:  # most answers: no need to try the regex at every line
        return []
    return [(lang.lower(), body) for lang, body in _FENCED.findall(text[:MAX_PARSE * 5])]


def _json_found(text: str, blocks: list[tuple[str, str]]) -> bool:
    """Some JSON value parses: the whole answer, a fenced block, or its first {...} / [...] span."""
    if any(lang not in ("", "json", "jsonc") for lang, _ in blocks):
        return True  # code in another language was given instead; a JSON check would misjudge it
    candidates = [text.strip()] + [body for _, body in blocks]
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start >= 0:
        candidates.append(text[start:max(text.rfind("}"), text.rfind("]")) + 1])
    for candidate in candidates:
        if len(candidate) > MAX_PARSE * 5:
            return True  # too big to check cheaply: give the benefit of the doubt
        try:
            json.loads(candidate)
            return True
        except (ValueError, RecursionError):
            continue
    return False


def _python_state(blocks: list[tuple[str, str]], asked: str) -> str:
    """"bad" when a Python block does not parse, "ok" when all do, "" when there is none to check."""
    python_asked = "python" in asked
    budget, state = MAX_PYTHON, ""
    for lang, body in blocks:
        untagged_python = not lang and python_asked and _CODE_LIKE_PYTHON.search(body) and not _BRACES.search(body)
        if not (lang in _PYTHON_TAGS or untagged_python):
            continue
        if len(body) > budget or ">>>" in body:
            continue  # past the budget, or a REPL transcript: not a program
        budget -= len(body)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. SyntaxWarning on invalid escapes
                ast.parse(textwrap.dedent(_NOT_PYTHON_LINE.sub("", body)))
            state = state or "ok"
        except SyntaxError as exc:
            # a skeleton whose bodies are comments ("def send(self):\n    # ...") is a sketch, not a bug
            if not str(exc.msg).startswith("expected an indented block"):
                return "bad"
        except (ValueError, RecursionError, MemoryError):
            return "bad"
    return state


# ---------------------------------------------------------------- length, language, repetition

# Asks whose answer is short by design, or as long as the text given (a translation, a summary).
_BREVITY = re.compile("(?:" + word_start(
    "one word", "single word", "yes or no", "briefly", "brief", "short answer", "in one sentence", "one sentence",
    "one line", "one-line", "just the", "only the", "tl;?dr", "concise", "in a few words", "no explanation",
    r"translat\w*", r"summar\w*", "rephrase", "reword", "paraphrase", "rewrite", "proofread", "fix the typos?",
) + r")\b")
_SHORT_AT = 80  # characters: an answer this short to a complex request counts fully as too short
_LONG_ENOUGH = 1200  # characters: from here on, length says nothing


def _too_short(text: str, asked: Asked, request: Request) -> float:
    size = len(text.strip())
    if size >= _LONG_ENOUGH or asked.brief:
        return 0.0
    complex_ask = asked.complex
    if complex_ask is None:
        from routecli.routing.signals import extract_signals

        complex_ask = _complex(extract_signals(request))
    if not complex_ask:
        return 0.0
    ramp = math.log(_LONG_ENOUGH / max(size, 1)) / math.log(_LONG_ENOUGH / _SHORT_AT)
    return round(min(1.0, ramp), 3)


def _complex(signals: Mapping[str, Any]) -> bool:
    """A request that wants more than a line: reasoning, maths, steps, or a long ask."""
    def number(key: str) -> float:
        value = signals.get(key, 0)
        return float(value) if isinstance(value, (int, float)) else 0.0

    if signals.get("simple") and not signals.get("reasoning"):
        return False
    # code words alone do not count: "write a function that reverses a list" wants a few lines
    return bool(signals.get("reasoning")) or number("math") > 0 or number("steps") >= 2 or number("est_tokens") >= 40


_LANGUAGES_NAMED = (r"(?:english|german|french|spanish|chinese|japanese|korean|russian|arabic|italian|portuguese|"
                    r"hindi|greek|hebrew|thai|dutch|polish|ukrainian)\b")
_LANGUAGE_NAMED = re.compile("translat|übersetz|tradu|" + word_start(*(f"{word} {_LANGUAGES_NAMED}"
                                                                      for word in ("in", "into", "to"))))
_LANG_SAMPLE = 1_000
_CODE_SPAN = re.compile(r"(?s)```.*?```|`[^`\n]*`")


def _language_mismatch(asked: Asked, text: str) -> bool:
    """Conservative: only a clear switch of script, or of Latin language, counts; never on translation."""
    if asked.language_named:
        return False
    prose = _CODE_SPAN.sub(" ", text[:_LANG_SAMPLE * 3])[:_LANG_SAMPLE]
    if asked.prose.isascii() and prose.isascii():  # both Latin script: only the language can differ
        return _latin_mismatch(asked.latin, prose)
    asked_scripts, answer_scripts = script_counts(asked.prose), script_counts(prose)
    asked_main, answer_main = dominant(asked_scripts), dominant(answer_scripts)
    if asked_main and answer_main and asked_main != answer_main:
        # a prompt that holds any of the answer's script (a question under pasted code) allows it
        return asked_scripts.get(answer_main, 0) < 3
    return asked_main == answer_main == "latin" and _latin_mismatch(asked.latin, prose)


def _latin_mismatch(asked_lang: str, prose: str) -> bool:
    if not asked_lang:  # no language to differ from: the answer's is not worth working out
        return False
    answer_lang = latin_language(prose.lower())
    return bool(answer_lang and asked_lang != answer_lang)


_REPEAT_MIN_LINES = 8


def _repetitive(text: str) -> bool:
    """A degenerate loop: the same substantial line again and again, or one phrase repeated."""
    lines = [line.strip() for line in text[:MAX_PARSE].splitlines() if len(line.strip()) >= 20]
    if len(lines) >= _REPEAT_MIN_LINES and len(set(lines)) <= 0.5 * len(lines):
        return True
    sample = text[:MAX_PARSE].strip()
    if len(sample) >= 200:
        unit = sample[-40:]
        return sample.count(unit) >= 5
    return False
