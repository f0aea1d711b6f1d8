"""routing.assess: each check, the bounds and speed of the score, its escalation config, and how
well it predicts a low grade on the shared Arena answers."""

import importlib.util
import math
import statistics
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routecli.config import load_config
from routecli.config_edit import set_value
from routecli.domain import Message, Reply, Request
from routecli.errors import ConfigError
from routecli.providers import anthropic, gemini, openai
from routecli.routing.assess import (
    BIAS,
    WEIGHTS,
    Assessment,
    assess,
    indicators,
    normalise_finish_reason,
    score,
)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "arena_bench_v1"
needs_shared = pytest.mark.skipif(not (SHARED / "pairs.jsonl").exists(),
                                  reason="shared Arena data not checked out beside the repo")

COMPLEX = "Explain why quicksort runs in O(n log n) on average, step by step, and compare it with merge sort."
GOOD = (
    "Quicksort picks a pivot and partitions the array around it. With a random pivot, the expected "
    "split is balanced enough that the recursion depth is logarithmic, and each level does linear "
    "work in total, so the expected cost is O(n log n). Merge sort always splits in half, so it is "
    "O(n log n) in the worst case too, but it needs a buffer of n elements, while quicksort sorts "
    "in place and is usually faster in practice thanks to its cache-friendly inner loop. The worst "
    "case of quicksort, O(n^2), needs consistently bad pivots, which randomisation makes unlikely.\n\n"
    "Step by step: first, choose a pivot uniformly at random. Second, partition so that smaller "
    "elements come before it and larger ones after it. Third, recurse on both sides. The expected "
    "number of comparisons is about 2 n ln n, roughly 1.39 n log2 n, a little more than merge sort "
    "makes, yet each comparison is cheaper because the data stays in cache and nothing is copied. "
    "For nearly sorted input with a naive first-element pivot, quicksort degrades, which is why "
    "libraries use median-of-three or introsort and fall back to heapsort when recursion is deep. "
    "Merge sort remains the choice when stability matters or the data lives on disk or in a list."
)


def check(prompt, answer, finish=None, system=None):
    return assess(Request((Message("user", prompt),), system=system), Reply(answer, None, "m", finish))


def test_a_clean_answer_scores_the_shipped_prior_and_names_nothing():
    result = check(COMPLEX, GOOD, "stop")
    assert result == Assessment(round(1 / (1 + math.exp(-BIAS)), 4), ())
    assert result.confidence >= 0.85


@pytest.mark.parametrize("answer", ["", "   \n\t "])
def test_an_empty_answer_is_hopeless(answer):
    result = check(COMPLEX, answer)
    assert result.reasons == ("empty",) and result.confidence < 0.05


@pytest.mark.parametrize("finish, normal", [
    ("length", "max_tokens"), ("max_tokens", "max_tokens"), ("MAX_TOKENS", "max_tokens"),
    ("content_filter", "content_filter"), ("refusal", "content_filter"), ("SAFETY", "content_filter"),
    ("stop", "stop"), ("end_turn", "stop"), ("STOP", "stop"), ("tool_calls", "other"),
    (None, ""), ("", ""), (42, ""),
])
def test_finish_reasons_of_every_vendor_are_normalised(finish, normal):
    assert normalise_finish_reason(finish) == normal


@pytest.mark.parametrize("finish", ["length", "max_tokens", "MAX_TOKENS"])
def test_an_answer_cut_by_the_token_cap_escalates(finish):
    result = check(COMPLEX, GOOD, finish)
    assert result.reasons == ("truncated:max_tokens",) and result.confidence < 0.7


@pytest.mark.parametrize("finish", ["content_filter", "refusal", "SAFETY"])
def test_a_filtered_answer_escalates(finish):
    assert "content_filter" in check(COMPLEX, GOOD, finish).reasons


def test_what_each_provider_parses_reaches_the_truncation_check():
    bodies = [
        openai.parse_response({"choices": [{"message": {"content": GOOD}, "finish_reason": "length"}]}),
        anthropic.parse_response({"content": [{"type": "text", "text": GOOD}], "stop_reason": "max_tokens"}),
        gemini.parse_response({"candidates": [{"content": {"parts": [{"text": GOOD}]}, "finishReason": "MAX_TOKENS"}]}),
    ]
    for parsed in bodies:
        assert check(COMPLEX, parsed.text, parsed.finish_reason).reasons == ("truncated:max_tokens",)


def test_a_bare_refusal_escalates_but_a_disclaimer_before_an_answer_does_not():
    refused = check(COMPLEX, "I'm sorry, but I can't help with that request.")
    assert "refusal" in refused.reasons and refused.confidence < 0.7
    assert "refusal" in check("Tell me a joke", "I am unable to do that.").reasons
    disclaimer = "As an AI, I cannot browse the web. However, here is what I know. " + GOOD
    assert "refusal" not in check(COMPLEX, disclaimer).reasons


def test_hedging_at_the_start_or_end_counts_but_not_inside_a_story():
    assert "hedging" in check("What is 17 * 23?", "I'm not sure, but I think it is 391.").reasons
    story = GOOD + ' "I don\'t know," she said, and walked on. ' + GOOD
    assert "hedging" not in check("Write a short story.", story).reasons


def test_unclosed_code_and_a_mid_sentence_ending_read_as_cut_off():
    unclosed = "Here is the code:\n\n```python\ndef partition(items, pivot):\n    left = [x for x in items"
    assert check(COMPLEX, GOOD + "\n\n" + unclosed).reasons[0] == "truncated:unclosed_code"
    mid = check(COMPLEX, GOOD + " Another reason is that the partition step reads the array in")
    assert mid.reasons == ("truncated:mid_sentence",) and 0.7 < mid.confidence < 0.9
    assert check(COMPLEX, GOOD + "\n\nBest regards,\nAda Lovelace").reasons == ()


def test_json_asked_for_must_parse_somewhere_in_the_answer():
    asked = "List three primes as JSON only, in the form {\"primes\": [...]}"
    assert check(asked, '{"primes": [2, 3, 5]}').reasons == ()
    assert check(asked, 'Sure:\n```json\n{"primes": [2, 3, 5]}\n```').reasons == ()
    assert check(asked, 'Here they are: {"primes": [2, 3, 5]} - enjoy!').reasons == ()
    broken = check(asked, '{"primes": [2, 3, 5')
    assert "json_invalid" in broken.reasons and broken.confidence < 0.7
    assert "json_invalid" not in check("List three primes.", '{"primes": [2, 3').reasons  # not asked for
    code_instead = "```python\nimport json\nprint(json.dumps({'primes': [2, 3, 5]}))\n```"
    assert "json_invalid" not in check("Write Python that prints primes as JSON.", code_instead).reasons


def test_python_blocks_must_parse_but_sketches_and_shell_lines_are_fine():
    ask = "Write a Python function that reverses a list."
    assert check(ask, "```python\ndef rev(items):\n    return items[::-1]\n```").reasons == ()
    broken = check(ask, "```python\ndef rev(items)\n    return items[::-1]\n```")
    assert broken.reasons == ("code_unparseable",) and broken.confidence < 0.7
    sketch = "```python\nclass Mailer:\n    def send(self):\n        # your code here\n```"
    shell = "```python\n!pip install numpy\npip install pandas\n%matplotlib inline\nimport numpy\n```"
    indented = "```python\n    import os\n    print(os.getcwd())\n```"
    for answer in (sketch, shell, indented, "```python\n>>> 1 +\n```"):
        assert "code_unparseable" not in check(ask, answer).reasons, answer
    assert "code_unparseable" in check(ask, "```\ndef rev(items)\n    return items\n```").reasons  # untagged
    rust = "```\nfn rev(items: Vec<u8>) -> Vec<u8> {\n    items.into_iter().rev().collect();\n}\n```"
    assert "code_unparseable" not in check("Port this Python to Rust: def f(x): pass", rust).reasons


def test_code_asked_for_but_none_given_lowers_confidence():
    prose = "You can reverse a list by slicing it with a step of minus one, which returns a new list."
    result = check("Write a Python function that reverses a list.", prose)
    assert result.reasons == ("code_missing",) and 0.7 < result.confidence < 0.9


def test_too_short_counts_only_for_complex_asks_that_did_not_ask_for_brevity():
    short = check(COMPLEX, "Because of the pivot.")
    assert short.reasons == ("too_short_for_complex",) and short.confidence < 0.7
    assert check("What is the capital of France?", "Paris.").reasons == ()
    assert check(COMPLEX + " Answer in one sentence.", "Random pivots split the array evenly on average.").reasons == ()
    assert check("Translate into German: " + COMPLEX, "Erkläre, warum Quicksort im Mittel O(n log n) braucht.").reasons == ()
    medium = check(COMPLEX, GOOD.split("\n\n")[0])
    assert medium.reasons == ("too_short_for_complex",) and short.confidence < medium.confidence < 0.9


GERMAN = ("Die Wahl des Pivots ist nicht einfach, und der Algorithmus ist im Mittel schnell. Wir teilen das "
          "Feld und sortieren die Teile mit der gleichen Methode, bis sie leer sind. ") * 3
CHINESE = "快速排序的平均复杂度是O(n log n)，因为随机选择的枢轴通常会把数组分成大小相近的两部分。" * 3


@pytest.mark.parametrize("answer", [GERMAN, CHINESE])
def test_an_answer_in_another_language_escalates(answer):
    result = check(COMPLEX, answer)
    assert "language_mismatch" in result.reasons and result.confidence < 0.7


def test_language_checks_stay_quiet_when_the_switch_was_asked_for_or_the_ask_was_mixed():
    assert "language_mismatch" not in check("Translate into German: " + COMPLEX, GERMAN).reasons
    german_ask = "Erkläre mir bitte, warum Quicksort schnell ist und wie die Teile sortiert werden."
    assert "language_mismatch" not in check(german_ask, GERMAN).reasons
    mixed = "SELECT name FROM dept JOIN emp ON dept.id = emp.dept_id GROUP BY name;\n上面的SQL语句正确吗？"
    assert "language_mismatch" not in check(mixed, CHINESE).reasons
    assert "language_mismatch" not in check(COMPLEX, GOOD + " " + CHINESE[:20]).reasons


def test_a_looping_answer_is_repetitive():
    looped = GOOD + "\n" + "\n".join(["The pivot splits the array into two halves."] * 12)
    assert "repetitive" in check(COMPLEX, looped).reasons
    assert "repetitive" in check(COMPLEX, GOOD + " " + "again and again, " * 40).reasons
    table = "\n".join(f"| row {i} | value {i * i} | note about row {i} |" for i in range(20))
    assert "repetitive" not in check(COMPLEX, GOOD + "\n\n" + table).reasons


def test_reasons_come_strongest_first_and_every_name_has_a_weight():
    result = check("Return JSON only, and explain the trade-offs step by step.", '{"a": [1, 2', "length")
    assert result.reasons[0] == "truncated:max_tokens" and "json_invalid" in result.reasons
    assert score({name: 1.0 for name in WEIGHTS}).confidence < 1e-6
    assert set(indicators(Request((Message("user", COMPLEX),)), Reply("", None, "m"))) <= set(WEIGHTS)


def test_the_routers_signals_can_be_passed_in_and_change_nothing():
    from routecli.routing.signals import extract_signals

    request = Request((Message("user", COMPLEX),))
    reply = Reply("Because of the pivot.", None, "m")
    assert assess(request, reply, signals=extract_signals(request)) == assess(request, reply)


ODD_TEXT = st.text(max_size=3_000) | st.binary(max_size=2_000).map(lambda b: b.decode("latin-1")) | st.sampled_from(
    ["```", "```python\n", "{" * 3000, "[" * 5000 + "]", "\x00" * 100, "\ud800 lone surrogate", "a" * 50_000]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prompt=ODD_TEXT, answer=ODD_TEXT, system=st.none() | st.text(max_size=200),
       finish=st.none() | st.sampled_from(["length", "stop", "SAFETY", "", "weird"]) | st.text(max_size=10))
def test_any_input_gives_a_bounded_deterministic_score_without_raising(prompt, answer, system, finish):
    request = Request((Message("user", prompt),), system=system)
    reply = Reply(answer, None, "m", finish)
    found = indicators(request, reply)  # the checks themselves, not the safety net in assess()
    assert set(found) <= set(WEIGHTS) and all(0.0 < value <= 1.0 for value in found.values())
    result = assess(request, reply)
    assert 0.0 <= result.confidence <= 1.0 and result == assess(request, reply)
    assert set(result.reasons) == set(found)


def test_a_crashing_check_costs_a_neutral_score_not_the_answer(monkeypatch):
    from routecli.routing import assess as module

    monkeypatch.setattr(module, "_repetitive", lambda text: 1 / 0)
    assert check(COMPLEX, GOOD) == Assessment(0.5, ("assess_failed",))


def _median_ms(request, reply, runs=15):
    assess(request, reply)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        assess(request, reply)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def test_a_10kb_answer_takes_about_a_millisecond_and_a_megabyte_stays_cheap():
    request = Request((Message("user", COMPLEX + " Show the Python code and return the timings as JSON."),))
    code = "```python\n" + "\n".join(f"def f{i}(x):\n    return [y * {i} for y in range(x)]\n" for i in range(40)) + "```\n"
    answer = (GOOD + "\n\n" + code) * 3
    assert 9_000 < len(answer) < 12_000
    # measured 0.75 ms here (half of it ast.parse on two blocks), 2 ms for the megabyte; the margin is for busy CI
    assert _median_ms(request, Reply(answer[:10_000], None, "m")) < 5
    assert _median_ms(request, Reply(answer * 100, None, "m"), runs=5) < 50


# ---------------------------------------------------------------- config


def test_escalation_defaults_are_on_at_0_7_once():
    settings_ = load_config().escalation
    assert (settings_.enabled, settings_.threshold, settings_.max_escalations) == (True, 0.7, 1)


def test_escalation_settings_are_settable_and_validated(isolated_home):
    set_value("escalation.threshold", "0.6")
    set_value("escalation.max_escalations", "0")
    set_value("escalation.enabled", "false")
    settings_ = load_config().escalation
    assert (settings_.enabled, settings_.threshold, settings_.max_escalations) == (False, 0.6, 0)
    for key, value, fragment in [("escalation.threshold", "1.5", "between 0 and 1"),
                                 ("escalation.max_escalations", "-1", "0 or more"),
                                 ("escalation.enabled", "maybe", "true or false"),
                                 ("escalation.retries", "2", "escalation.enabled")]:
        with pytest.raises(ConfigError) as info:
            set_value(key, value)
        assert fragment in str(info.value) and "\n" not in str(info.value), str(info.value)
    assert load_config().escalation.threshold == 0.6  # a refused value is never written


# ---------------------------------------------------------------- the shared Arena answers


def _benchmark():
    if "escalation_quality" not in sys.modules:
        spec = importlib.util.spec_from_file_location("escalation_quality", ROOT / "benchmarks" / "escalation_quality.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["escalation_quality"] = module
        spec.loader.exec_module(module)
    return sys.modules["escalation_quality"]


@needs_shared
def test_confidence_predicts_a_low_grade_on_the_shared_answers():
    """Measured: Mixtral AUROC 0.697 (grade <= 5/10) and 0.626 (GPT-4 2+ points better);
    escalating below 0.7 sends 11% of requests up and wins 25% of the quality gap."""
    report = _benchmark().pair_report(SHARED, "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1", 0.1)
    assert report["auroc_low_abs"] > 0.65 and report["auroc_low_rel"] > 0.58
    at_default = next(p for p in report["policies"] if p["policy"] == "escalate<0.7")
    assert at_default["quality"] > at_default["random"] + 0.02 and at_default["escalated"] < 0.2
    assert at_default["low_share"] > 0.7  # what it escalates is mostly bad; the base rate is 32%


@needs_shared
def test_shipped_weights_match_a_fresh_fit():
    """If this fails after changing a check in assess.py: run python scripts/fit_assess.py --write."""
    spec = importlib.util.spec_from_file_location("fit_assess", ROOT / "scripts" / "fit_assess.py")
    fitter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fitter)
    _, xs, ys = fitter.dataset(SHARED)
    _, weights = fitter.fit(xs, ys, fitter.SHIPPED_PULL)
    assert {name: round(value, 2) for name, value in weights.items()} == WEIGHTS, "run python scripts/fit_assess.py --write"
    assert BIAS == fitter.shipped_bias()


# The phrase regexes run lowercase on fold(text), grouped by first letter, for speed; they must
# find a phrase exactly where the plain `(?i)\b(?:...)` form of the same phrases does.
_CASE_TRICKS = "iIİınNsSſaAkKKmMoOtT'’ ,.-_1%\n"


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([*_CASE_TRICKS, "I'm sorry, but", "İ AM NOT SURE", "ı don’t know", "not 100% ſure",
                                 "As an AI, I cannot", "xI'm not sure", "_i am unsure", "sorry, İ can't", "i must refuse",
                                 "I might be wrong", "i'm not confident", "I cannot be certain", "I DON'T KNOW",
                                 "I do not have enough information", "not 100% sure"]),
                max_size=12).map("".join))
def test_word_start_phrases_match_where_the_case_insensitive_regex_does(text):
    import re

    from routecli.routing import assess as module
    from routecli.routing.textscan import fold

    for phrases, fast in ((module._REFUSAL_PHRASES, module._REFUSAL), (module._HEDGE_PHRASES, module._HEDGE)):
        plain = re.compile(r"(?i)\b(?:" + "|".join(phrases) + ")")
        assert bool(fast.search(fold(text))) == bool(plain.search(text)), text
    # and the hedge check's shortcut (the regex runs only where one of its words occurs) finds the same
    assert module._hedged(fold(text)) == bool(re.search(r"(?i)\b(?:" + "|".join(module._HEDGE_PHRASES) + ")", text))


# The language guess counts the common words in C for ASCII text and with one regex for the rest; either
# way it must count them as a tally of every word (a longest run of a-z, à-ÿ) does.
_WORD_BITS = ["the", "die", "la", "las", "les", "el", "und", "y", "est", "es", "que", "for", "für", "à", "ß", "x",
              "théorie", "2", " ", "\n", "-", "'", "ü", "é", "is", "are", "on", "pas", "con", "del", "dem", "and", "THE",
              "Und", "_", "9the"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_WORD_BITS), max_size=40).map("".join))
def test_the_language_guess_counts_common_words_as_a_word_tally_does(text):
    import re
    from collections import Counter

    from routecli.routing.textscan import STOPWORDS, latin_language

    counts = Counter(re.findall(r"[a-zà-ÿ]+", text))
    hits = {lang: sum(counts[word] for word in counts.keys() & stop) for lang, stop in STOPWORDS.items()}
    ranked = sorted(hits.items(), key=lambda item: -item[1])
    (best, n), (_, runner_up) = ranked[0], ranked[1]
    assert latin_language(text) == (best if n >= 3 and n >= 3 * max(runner_up, 1) else ""), text


@pytest.mark.parametrize("prompt, answer", [
    ("Réponds en français : pourquoi le ciel est-il bleu ? Explique le pour moi et pour les enfants de la classe.",
     "The sky is blue because the air scatters the blue of the light more than the red, and that is what we see."),
    ("Return the result as a JSON object with the keys name and age for the user in this text", "name: Bob, age: 3"),
    ("Write a python function that reverses a list, and explain why it works step by step",
     "```python\ndef rev(xs):\n    return xs[::-1\n```"),
    ("In one sentence: why do cats purr?", "I’m sorry, but I can’t help with that."),
    ("Prove that there are infinitely many primes, step by step, and explain each step.", "Yes."),
])
def test_the_request_side_worked_out_ahead_gives_the_same_assessment(prompt, answer):
    from routecli.routing.assess import expect
    from routecli.routing.signals import extract_signals

    request = Request((Message("user", prompt),))
    reply = Reply(answer, None, "m", "stop", None, 0.0)
    signals = extract_signals(request)
    ahead = assess(request, reply, signals=signals, asked=expect(request, signals))
    assert ahead == assess(request, reply, signals=signals) == assess(request, reply)
    assert ahead.reasons  # each case trips a check, so the comparison is not between two clean answers
