"""Signals are named facts; a few fixed examples pin what each one notices."""

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from routecli.domain import Image, Message, Request
from routecli.routing import signals as signals_module
from routecli.routing.signals import extract_signals


def signals(text, **kw):
    messages = kw.pop("messages", None) or (Message("user", text),)
    return extract_signals(Request(messages, **kw))


def test_code_math_reasoning_and_steps():
    s = signals("First, prove the theorem step by step. Then:\n1. derive x\n2. refactor the python code\n```python\nx = 1 + 2\n```")
    assert s["code_blocks"] == 1 and s["code_langs"] == "python" and s["code_words"] >= 1
    assert s["math"] >= 2 and "prove" in s["reasoning"] and "step by step" in s["reasoning"]
    assert s["steps"] >= 4


def test_simple_tasks_and_question_shape():
    s = signals("Translate 'hello' into French. What is the capital of Peru?")
    assert "translate" in s["simple"] and "capital of" in s["simple"]
    assert s["questions"] == 1 and s["sentences"] == 2


def test_domains():
    assert signals("Review this contract clause for liability under GDPR")["domain"] == "legal"
    assert signals("Write a haiku and a short story about rain")["domain"] == "creative"
    assert signals("Should I put my portfolio into stocks given the interest rate?")["domain"] == "financial"
    assert signals("Hello there")["domain"] == ""


def test_agentic_tools_files_turns_images():
    image = Image("image/png", "aGk=")
    s = signals("", messages=(
        Message("user", "look at src/app.py and README.md"),
        Message("assistant", "ok"),
        Message("tool", '{"result": 1}'),
        Message("user", "now describe this screenshot", (image,)),
    ), system="You are an agent. You have access to tools.")
    assert s["agentic"] is True and s["tool_results"] == 1 and s["turns"] == 2
    assert s["file_refs"] == 2 and s["images"] == 1 and s["vision_words"] == 1


def test_constraints_and_length():
    s = signals("Write it without loops. It must be exactly 3 lines and do not use imports. " * 2)
    assert s["constraints"] >= 6
    big = signals("x" * 500_000)
    assert big["chars"] == 500_000 and big["est_tokens"] == 125_000


_TEXT = st.text(alphabet=st.sampled_from(list("ab1_Zé.,;:'-/+#()= \n\t")), max_size=60)


@settings(max_examples=400, deadline=None)
@given(_TEXT)
def test_tokens_are_words_less_the_punctuation_they_end_with(text):
    """The tokenizer's one regex counts what `[\\w][\\w./+#'-]*` then rstrip(".,;:'-") did."""
    counts = {}
    for token in re.findall(r"[\w][\w./+#'-]*", text):
        token = token.rstrip(".,;:'-")
        counts[token] = counts.get(token, 0) + 1
    assert dict(signals_module._token_counts(text)) == counts


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789 +-*/^=<>(ax√∑∫π≤≥≠\n.")), max_size=30))
def test_maths_is_found_where_the_plain_alternation_finds_it(text):
    """_MATH_OP opens with one class so the regex engine can skip ahead; it finds what the plain form does."""
    assert signals_module._MATH_OP.findall(text) == re.findall(r"\d\s*[-+*/^=<>]\s*[\d(a-z]|[√∑∫π≤≥≠]", text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["prove", "proofs", "optimizing", "migrate", "step", "by", "design", "a", "cat",
                                 "symptoms", "diagnosis", "taxes", "interest", "rate", "12", "app.py", "x" * 50]),
                max_size=12))
def test_a_part_is_read_the_same_with_its_tokens_remembered(words):
    text = " ".join(words)
    first, again = signals_module.read_part(text), signals_module.read_part(text)
    assert first == again == _read_unremembered(text)
    assert all(len(token) <= signals_module.KNOWN_LENGTH for token in signals_module._INFO)  # "x" * 50 is not kept


def _read_unremembered(text):
    """read_part worked out from the lexicons alone, for every token afresh."""
    counts = signals_module._token_counts(text)
    found, domains, numbers, files = {}, {}, 0, 0
    for token, n in counts.items():
        for name in signals_module._LEXICON.families(token):
            found.setdefault(name, {})[token] = n
        for name in signals_module._DOMAIN_LEXICON.families(token):
            domains[name] = domains.get(name, 0) + n
        if token[0].isdigit():
            numbers += n
        elif "." in token and token.rsplit(".", 1)[1] in signals_module._FILE_EXTENSIONS:
            files += n
    for first, pairs in signals_module._LEXICON.phrases.items():
        for phrase, name in pairs:
            if first in counts and text.count(phrase):
                found.setdefault(name, {})[phrase] = text.count(phrase)
    return signals_module.Part(counts, found, domains, numbers, files)


def test_what_tokens_tell_is_remembered_up_to_a_limit(monkeypatch):
    monkeypatch.setattr(signals_module, "KNOWN_TOKENS", 3)
    known = signals_module.Known(signals_module.token_info)
    for token in "one two three four five prove".split():
        known[token]
    assert len(known) == 3
    assert known["prove"] == (("reasoning",), (), False, False)  # worked out without being remembered


def test_every_sample_prompt_keeps_its_signals_and_scores():
    """Pinned: the signals and both classifiers' scores and reasons for every sample prompt, alone and
    in a conversation. Work that makes them faster leaves this as it is; a change in what they notice
    changes it, and then the weights are retrained (scripts/train_weights.py) and this is updated."""
    import hashlib
    import json
    from pathlib import Path

    from routecli.routing import learned, rules

    root = Path(__file__).resolve().parents[1] / "sample_prompts"
    texts = [json.loads(line)["prompt"] for path in sorted(root.glob("*.jsonl"))
             for line in path.read_text().splitlines() if line.strip()]
    texts += ["", "hi", "```python\nprint(1)\n```\nfix this", "Übersetze das bitte", "x" * 20000, "1+2=?\n" * 50]
    out = []
    for text in texts:
        for request in (Request((Message("user", text),)),
                        Request((Message("user", "earlier, step by step"), Message("assistant", "ok"),
                                 Message("user", text)), system="You are a careful coding agent. You have access to tools.")):
            out.append(repr(sorted(extract_signals(request).items())))
            for score, reasons, _ in (learned.score_request(request), rules.score_request(request)):
                out.append(f"{score:.10f} {reasons}")  # to 10 places: the last bits may differ between libms
    assert (len(out), hashlib.sha256("\n".join(out).encode()).hexdigest()[:16]) == (168, "ddb33c71b8cf2c42")
