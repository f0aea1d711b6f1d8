import tomllib

import pytest

from routecli.config import app_dir, config_path, db_location, load_config
from routecli.config_edit import init_config, set_value
from routecli.domain import ModelRef
from routecli.errors import ConfigError, UsageError

CONTRACT = """
[providers.myopenai]             # any name
kind = "openai"                  # openai | anthropic | gemini
base_url = "https://api.openai.com/v1"
api_key_env = "OPENAI_API_KEY"

[routing]
tier_order = ["cheap", "standard", "premium"]   # cheapest first
baseline = "myopenai:gpt-4o"                    # what savings are measured against

[tiers.cheap]
models = ["myopenai:gpt-4o-mini"]               # provider:model, in order of preference

[prices."myopenai:gpt-4o-mini"]                 # optional override of the price data, USD per 1M tokens
input_mtok = 0.15
output_mtok = 0.60
"""


def test_defaults_without_a_file(isolated_home):
    config = load_config()
    assert app_dir() == isolated_home
    assert config.tier_order == ("local", "cheap", "standard", "premium")
    assert config.source_path is None
    assert config.baseline is not None and config.baseline.provider in config.providers
    for tier in config.tier_order:
        for ref in config.tiers[tier]:
            assert ref.provider in config.providers
    assert config.provider("ollama").api_key_env is None
    assert config.price_override(ModelRef("ollama", "llama3.2")).input_mtok == 0


def test_contract_example_parses_and_merges_over_defaults(isolated_home):
    config_path().write_text(CONTRACT)
    config = load_config()
    assert config.provider("myopenai").kind == "openai"
    assert config.baseline == ModelRef("myopenai", "gpt-4o")
    assert config.tiers["cheap"] == (ModelRef("myopenai", "gpt-4o-mini"),)
    assert str(config.price_override(ModelRef("myopenai", "gpt-4o-mini")).output_mtok) == "0.6"
    assert "standard" in config.tiers  # kept from the defaults


@pytest.mark.parametrize(
    "text, fragment",
    [
        ('[providers.x]\nkind = "grpc"\nbase_url = "http://a"\n', "openai, anthropic, gemini"),
        ('[providers.x]\nkind = "openai"\nbase_url = "ftp://a"\n', "http(s) URL"),
        ('[routing]\ntier_order = ["cheap", "nope"]\n', "no [tiers.nope]"),
        ('[routing.thresholds]\npremium = 0.2\n', "above the previous"),
        ('[tiers.cheap]\nmodels = ["nobody:m"]\n', "unknown provider 'nobody'"),
        ('[store]\nsave_text = "yes"\n', "true or false"),
        ('[prices."openai:x"]\ninput_mtok = -1\noutput_mtok = 1\n', "0 or more"),
        ("this is = = not toml", "not valid TOML"),
    ],
)
def test_bad_config_is_one_line_naming_the_fix(isolated_home, text, fragment):
    config_path().write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config()
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_routecli_config_env_points_elsewhere(tmp_path, monkeypatch):
    other = tmp_path / "other.toml"
    other.write_text('[routing]\nbaseline = "openai:gpt-5.5"\n')
    monkeypatch.setenv("ROUTECLI_CONFIG", str(other))
    assert load_config().baseline == ModelRef("openai", "gpt-5.5")
    monkeypatch.setenv("ROUTECLI_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config()


def test_db_location_order(isolated_home, monkeypatch):
    assert db_location() == str(isolated_home / "routecli.db")
    monkeypatch.setenv("ROUTECLI_DB", "/tmp/x.db")
    assert db_location() == "/tmp/x.db"
    assert db_location("sqlite:///y.db") == "sqlite:///y.db"


def test_init_writes_commented_valid_toml(isolated_home):
    path = init_config()
    text = path.read_text()
    assert text.count("\n# ") >= 5  # section comments
    assert tomllib.loads(text)["routing"]["tier_order"] == ["local", "cheap", "standard", "premium"]
    assert load_config().source_path == path
    with pytest.raises(ConfigError, match="--force"):
        init_config()


def test_set_validates_and_keeps_comments(isolated_home):
    init_config()
    set_value("providers.openai.base_url", "http://127.0.0.1:9/v1")
    set_value("models.openai:gpt-5.4-mini.context_window", "400000")
    with pytest.raises(ConfigError, match="set both at once"):
        set_value('prices."ollama:llama3.2".input_mtok', "0.5")
    set_value("prices.ollama:llama3.2", "0.5,1.5")
    set_value('prices."ollama:llama3.2".input_mtok', "0.25")
    set_value("routing.tier_order", "cheap,premium")
    config = load_config()
    assert config.provider("openai").base_url == "http://127.0.0.1:9/v1"
    assert config.caps(ModelRef("openai", "gpt-5.4-mini")).context_window == 400000
    assert config.tier_order == ("cheap", "premium")
    price = config.price_override(ModelRef("ollama", "llama3.2"))
    assert (str(price.input_mtok), str(price.output_mtok)) == ("0.25", "1.5")
    assert "# How a prompt becomes a tier" in config_path().read_text()


@pytest.mark.parametrize(
    "key, value, fragment",
    [
        ("providers.openai.kind", "soap", "must be one of openai, anthropic, gemini"),
        ("store.save_text", "maybe", "true or false"),
        ("routing.classifier", "magic", "must be one of rules"),
        ("routing.tier_order", "cheap,imaginary", "defined tiers:"),
        ("routing.colour", "blue", "settable keys: routing.tier_order"),
        ("http.read_timeout", "soon", "decimal number"),
        ("serve.commit_interval_ms", "-5", "0-10000 milliseconds"),
    ],
)
def test_set_refuses_wrong_values_listing_allowed_ones(isolated_home, key, value, fragment):
    init_config()
    before = config_path().read_text()
    with pytest.raises(ConfigError) as info:
        set_value(key, value)
    assert fragment in str(info.value)
    assert config_path().read_text() == before  # nothing half-written


def test_set_without_a_file_starts_from_defaults(isolated_home):
    set_value("store.save_text", "false")
    assert load_config().save_text is False
    assert "tiers" in tomllib.loads(config_path().read_text())


def test_unknown_provider_lookup_names_the_fix():
    with pytest.raises(UsageError, match=r"add \[providers.nope\]"):
        load_config().provider("nope")


@pytest.mark.parametrize(
    "text, fragment",
    [
        ('[routing]\ntier_ordr = ["cheap"]\n', "routing.tier_ordr: is not a setting"),
        ('[providers.openai]\napi_key = "sk-oops"\n', "keys under providers: <name>.api_key_env"),
        ('[prices."openai:x"]\ninput_mtok = 1\noutput_mtok = 1\ninptu = 2\n', "prices.openai:x.inptu"),
        ("[colours]\nred = 1\n", "sections: alerts, breaker, budgets"),
    ],
)
def test_misspelt_keys_are_refused_not_ignored(isolated_home, text, fragment):
    config_path().write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config()
    assert fragment in str(info.value)
    assert "sk-oops" not in str(info.value)
