import pytest

from routecli.config import load_config
from routecli.config_schema import CLASSIFIERS as CONFIG_CLASSIFIERS
from routecli.domain import Image, Message, ModelRef, Request
from routecli.errors import MissingKeyError, UsageError
from routecli.routing import CLASSIFIERS, classify
from routecli.routing.choose import choose


def req(text, **kw):
    images = kw.pop("images", ())
    return Request((Message("user", text, images),), **kw)


@pytest.fixture
def config():
    return load_config()


def everyone(_provider):
    return True


def test_registry_and_config_agree():
    assert set(CLASSIFIERS) == set(CONFIG_CLASSIFIERS)


def test_easy_prompt_goes_to_the_local_tier_and_says_why(config):
    verdict = classify(req("What is the capital of France?"), config)
    assert verdict.tier == "local" == config.tier_order[0]
    assert verdict.phase == config.classifier
    assert any("simple task" in r for r in verdict.reasons)
    assert 0 <= verdict.score < config.thresholds["standard"]


def test_hard_prompt_goes_premium(config):
    text = "Prove step by step that the algorithm is correct, then analyze its complexity and trade-offs."
    verdict = classify(req(text), config)
    assert verdict.tier == "premium"
    assert any("reasoning words" in r for r in verdict.reasons)


def test_score_is_bounded_and_deterministic(config):
    for text in ["", "x" * 1_000_000, "```python\n" * 500, "prove " * 10_000]:
        a, b = classify(req(text), config), classify(req(text), config)
        assert 0.0 <= a.score <= 1.0
        assert a.score == b.score and a.tier == b.tier


def test_explicit_tier_and_model_win(config):
    hard = "Prove step by step that the algorithm is correct and analyze its complexity."
    forced = classify(req(hard, tier="cheap"), config)
    assert (forced.tier, forced.phase) == ("cheap", "explicit")
    by_model = classify(req("hi", model="anthropic:claude-opus-5"), config)
    assert (by_model.tier, by_model.phase) == ("premium", "explicit")
    with pytest.raises(UsageError, match="Unknown tier 'gold'"):
        classify(req("hi", tier="gold"), config)


def test_choose_skips_providers_without_keys_and_notes_it(config):
    request = req("What is the capital of France?")
    decision = choose(classify(request, config), request, config, lambda p: p == "anthropic")
    assert decision.model == ModelRef("anthropic", "claude-haiku-4-5")
    assert "skipped openai:gpt-5.4-nano: no key for openai" in decision.notes


def test_choose_climbs_to_a_tier_with_a_key(config):
    request = req("What is the capital of France?")
    only = {"deepseek"}
    decision = choose(classify(request, config), request, config, lambda p: p in only)
    assert decision.tier == "standard" and decision.model.provider == "deepseek"
    assert any("tier cheap had no usable model" in n for n in decision.notes)


def test_no_key_anywhere_names_the_fix(config):
    request = req("hello there")
    with pytest.raises(MissingKeyError) as info:
        choose(classify(request, config), request, config, lambda p: False)
    assert "OPENAI_API_KEY" in str(info.value) and "routecli keys set openai" in str(info.value)


def test_images_only_go_to_vision_models(config):
    image = Image("image/png", "aGk=", "x.png")
    request = req("Describe this", images=(image,), tier="cheap")
    decision = choose(classify(request, config), request, config, lambda p: p in {"groq", "gemini"})
    assert decision.model == ModelRef("gemini", "gemini-3.1-flash-lite")
    forced = req("Describe this", images=(image,), model="groq:openai/gpt-oss-20b")
    with pytest.raises(UsageError, match="vision"):
        choose(classify(forced, config), forced, config, everyone)


def test_forced_model_needs_its_own_key(config):
    request = req("hi", model="anthropic:claude-opus-5")
    with pytest.raises(MissingKeyError, match="ANTHROPIC_API_KEY"):
        choose(classify(request, config), request, config, lambda p: p == "openai")
    with pytest.raises(UsageError, match="Unknown provider"):
        bad = req("hi", model="nope:x")
        choose(classify(bad, config), bad, config, everyone)


def test_agent_and_domain_floors_raise_the_tier_and_say_why(config):
    easy = "What is the capital of France?"
    critical = classify(req(easy, agent="critical"), config)
    assert critical.tier == "standard" and "agent 'critical' needs at least standard (was local)" in critical.reasons
    medical = classify(req("What is the usual dosage of ibuprofen for a patient?"), config)
    assert medical.signals["domain"] == "medical" and medical.tier == "standard"
    forced = classify(req(easy, agent="critical", tier="cheap"), config)
    assert forced.tier == "cheap"  # explicit always wins


def test_policies_are_validated(isolated_home):
    from routecli.config import config_path
    from routecli.errors import ConfigError

    config_path().write_text('[policies.domain_min_tier]\nastrology = "premium"\n')
    with pytest.raises(ConfigError, match="unknown domain"):
        load_config()
    config_path().write_text('[policies.agent_min_tier]\nbot = "platinum"\n')
    with pytest.raises(ConfigError, match="names tier 'platinum'"):
        load_config()


def test_tools_only_go_to_tool_capable_models(isolated_home):
    from routecli.config import config_path

    config_path().write_text('[models."openai:gpt-5.4-nano"]\ntools = false\n')
    config = load_config()
    request = Request((Message("user", "hi"),), tools=({"type": "function", "function": {"name": "f"}},), tier="cheap")
    decision = choose(classify(request, config), request, config, everyone)
    assert decision.model == ModelRef("gemini", "gemini-3.1-flash-lite")
    assert "skipped openai:gpt-5.4-nano: cannot take tools" in decision.notes
    assert classify(request, config).signals["agentic"] is True


def test_long_prompts_only_go_to_models_whose_window_fits(config):
    request = req("word " * 400_000, tier="cheap")  # ~500k tokens
    windows = {"openai": 400_000, "gemini": 1_000_000}
    decision = choose(classify(request, config), request, config, everyone, lambda ref: windows.get(ref.provider))
    assert decision.model.provider == "gemini"
    assert any("do not fit its 400,000-token window" in note for note in decision.notes)
    small = req("hello")
    called = []
    choose(classify(small, config), small, config, everyone, lambda ref: called.append(ref))
    assert called == []  # short prompts never look windows up


def test_nothing_fits_names_the_fix(config):
    request = req("word " * 400_000, tier="cheap")
    with pytest.raises(UsageError, match="No configured model can take this request"):
        choose(classify(request, config), request, config, everyone, lambda ref: 1000)
