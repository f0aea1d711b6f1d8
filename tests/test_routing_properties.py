"""Property-based: whatever text arrives, routing gives a bounded, deterministic decision or a clear error."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routecli.config import load_config
from routecli.domain import Message, Request
from routecli.errors import RoutecliError
from routecli.routing import CLASSIFIERS, classify
from routecli.routing.choose import choose

CONFIG = load_config()
TEXT = st.one_of(
    st.text(max_size=3000),
    st.binary(max_size=2000).map(lambda b: b.decode("utf-8", "surrogateescape")),  # invalid UTF-8 as read
    st.text(alphabet="`#$=+-*/^()[]{}<>\\\n\t 0123456789", max_size=2000),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXT, system=st.none() | st.text(max_size=300), turns=st.integers(1, 4))
def test_every_classifier_scores_in_bounds_and_deterministically(text, system, turns):
    messages = tuple(Message("user" if i % 2 == 0 else "assistant", text) for i in range(turns * 2 - 1))
    request = Request(messages, system=system)
    for name, (scorer, _version) in CLASSIFIERS.items():
        first, second = scorer(request), scorer(request)
        assert 0.0 <= first[0] <= 1.0, name
        assert first[0] == second[0] and first[1] == second[1], name


@settings(max_examples=100, deadline=None)
@given(text=TEXT, tier=st.none() | st.sampled_from(["cheap", "premium", "nope"]), agent=st.none() | st.text(max_size=10))
def test_decisions_are_complete_or_a_clear_error(text, tier, agent):
    request = Request((Message("user", text),), tier=tier, agent=agent)
    try:
        verdict = classify(request, CONFIG)
        decision = choose(verdict, request, CONFIG, lambda _provider: True)
    except RoutecliError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert decision.tier in CONFIG.tiers and decision.model in CONFIG.tiers[decision.tier]
    assert decision.verdict.reasons


def test_a_50_mb_prompt_routes_quickly_without_crashing():
    request = Request((Message("user", "word " * 10_000_000),))
    verdict = classify(request, CONFIG)
    assert 0 <= verdict.score <= 1 and verdict.signals["est_tokens"] == 12_500_000
