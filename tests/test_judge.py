import pytest

from routecli.domain import Image, Message, Request
from routecli.routing.judge import JudgeError, cache_key, in_band, judge_request, parse_verdict

TIERS = ("cheap", "standard", "premium")


def test_band():
    assert in_band(0.5, (0.35, 0.65)) and not in_band(0.7, (0.35, 0.65))


def test_prompt_carries_tiers_and_the_request_tail():
    request = Request((Message("user", "old"), Message("assistant", "x"), Message("user", "new question", (Image("image/png", "aGk="),))))
    judged = judge_request(request, TIERS)
    assert "cheap, standard, premium" in judged.system and judged.temperature == 0.0
    text = judged.messages[0].text
    assert "new question" in text and "old" not in text and "includes images" in text
    huge = judge_request(Request((Message("user", "a" * 50_000 + "THE END"),)), TIERS)
    assert len(huge.messages[0].text) < 5_000 and "THE END" in huge.messages[0].text


@pytest.mark.parametrize(
    "answer, expected",
    [
        ('{"tier": "premium", "reason": "multi-step proof"}', ("premium", "multi-step proof")),
        ('Sure! ```json\n{"tier": "Cheap", "reason": "lookup"}\n```', ("cheap", "lookup")),
        ('{"tier": "standard"}', ("standard", "")),
    ],
)
def test_parse_good_answers(answer, expected):
    assert parse_verdict(answer, TIERS) == expected


@pytest.mark.parametrize("answer", ["", "premium", '{"tier": "gold"}', '{"level": "cheap"}', "{not json}"])
def test_bad_answers_raise(answer):
    with pytest.raises(JudgeError):
        parse_verdict(answer, TIERS)


def test_cache_key_depends_on_the_last_two_messages_only():
    a = Request((Message("user", "x"), Message("assistant", "y"), Message("user", "z")))
    b = Request((Message("user", "DIFFERENT"), Message("assistant", "y"), Message("user", "z")))
    c = Request((Message("user", "x"), Message("assistant", "y"), Message("user", "other")))
    assert cache_key(a) == cache_key(b) != cache_key(c)
