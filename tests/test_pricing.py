"""Prices: config overrides, genai-prices by URL, unknown stays unknown, exact micros."""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from routecli.config import Config, PriceOverride, ProviderConfig, load_config
from routecli.domain import ModelRef, Usage
from routecli.pricing import Price, baseline_price, from_micros, price, to_micros

USAGE = Usage(input_tokens=1000, output_tokens=500, cached_tokens=100)


@pytest.fixture
def config() -> Config:
    return load_config()


def with_provider(config: Config, name: str, base_url: str, kind: str = "openai") -> Config:
    providers = dict(config.providers)
    providers[name] = ProviderConfig(name, kind, base_url, None)
    return dataclasses.replace(config, providers=providers)


def test_gpt_4o_mini_at_openai(config):
    # 900 uncached x $0.15/M + 100 cached x $0.075/M + 500 out x $0.60/M
    got = price(USAGE, ModelRef("openai", "gpt-4o-mini"), config)
    assert got.cost == Decimal("0.0004425")
    assert got.source.startswith("genai-prices ")


def test_cache_writes_and_reads_at_anthropic(config):
    # 700 plain x $1/M + 200 written x $1.25/M + 100 read x $0.10/M + 500 out x $5/M
    usage = Usage(input_tokens=1000, output_tokens=500, cached_tokens=100, cache_write_tokens=200)
    assert price(usage, ModelRef("anthropic", "claude-haiku-4-5"), config).cost == Decimal("0.00346")


def test_reasoning_tokens_are_already_inside_output(config):
    ref = ModelRef("openai", "gpt-4o-mini")
    with_reasoning = dataclasses.replace(USAGE, reasoning_tokens=400)
    assert price(with_reasoning, ref, config) == price(USAGE, ref, config)


def test_openrouter_is_matched_by_url_not_by_name(config):
    config = with_provider(config, "myrouter", "https://openrouter.ai/api/v1")
    usage = Usage(input_tokens=1000, output_tokens=500)
    for name in ("openrouter", "myrouter"):
        got = price(usage, ModelRef(name, "openai/gpt-4o-mini"), config)
        assert got.cost == Decimal("0.00045"), name  # 1000 x $0.15/M + 500 x $0.60/M


def test_config_override_beats_genai_prices(config):
    ref = ModelRef("openai", "gpt-4o-mini")
    override = PriceOverride(Decimal(1), Decimal(2), Decimal("0.5"))
    config = dataclasses.replace(config, prices={str(ref): override})
    # 900 x $1/M + 100 x $0.50/M + 500 x $2/M
    assert price(USAGE, ref, config) == Price(Decimal("0.00195"), "config")


def test_override_without_cached_price_charges_cached_as_input(config):
    ref = ModelRef("openai", "gpt-4o-mini")
    config = dataclasses.replace(config, prices={str(ref): PriceOverride(Decimal(1), Decimal(2))})
    assert price(USAGE, ref, config).cost == Decimal("0.002")


def test_wildcard_override_prices_local_models_at_zero(config):
    got = price(USAGE, ModelRef("ollama", "llama3.2"), config)  # defaults: "ollama:*" at 0
    assert got.cost is not None and got.cost == 0
    assert got.source == "config"


@pytest.mark.parametrize("model", ["my-finetune", "gpt-4o-mini"])
def test_unknown_local_server_is_unknown_never_zero(config, model):
    config = with_provider(config, "box", "http://localhost:9999/v1")
    assert price(USAGE, ModelRef("box", model), config) == Price(None, "unknown")


def test_official_host_is_priced_by_kind_when_the_url_does_not_match(config):
    config = with_provider(config, "shouty", "https://API.OPENAI.COM/v1")
    assert price(USAGE, ModelRef("shouty", "gpt-4o-mini"), config).cost == Decimal("0.0004425")


def test_unknown_model_at_a_known_vendor_is_unknown(config):
    assert price(USAGE, ModelRef("openai", "no-such-model-xyz"), config) == Price(None, "unknown")


def test_no_usage_means_no_cost(config):
    got = price(None, ModelRef("openai", "gpt-4o-mini"), config)
    assert got.cost is None


def test_inconsistent_usage_is_unknown_not_a_crash(config):
    usage = Usage(input_tokens=10, output_tokens=5, cached_tokens=50)
    assert price(usage, ModelRef("openai", "gpt-4o-mini"), config).cost is None


def test_baseline_price(config):
    assert config.baseline is not None
    assert baseline_price(USAGE, config) == price(USAGE, config.baseline, config)
    assert baseline_price(USAGE, config).cost > price(USAGE, ModelRef("openai", "gpt-4o-mini"), config).cost
    assert baseline_price(USAGE, dataclasses.replace(config, baseline=None)).cost is None


@pytest.mark.parametrize(
    "dollars, micros",
    [
        (Decimal("0.0004425"), 443),  # half a micro rounds up
        (Decimal("0.0004424"), 442),
        (Decimal("0.0000004"), 0),
        (Decimal("0"), 0),
        (Decimal("123456.789012"), 123456789012),
    ],
)
def test_micros(dollars, micros):
    assert to_micros(dollars) == micros
    assert from_micros(micros) == to_micros(dollars) / Decimal(1_000_000)


def test_micros_round_trip_and_none():
    for micros in (0, 1, 442, 10**15):
        assert to_micros(from_micros(micros)) == micros
    assert str(from_micros(442)) == "0.000442"
    assert to_micros(None) is None and from_micros(None) is None



# ---------------------------------------------------------------- rates: a price read off price() itself


def _usages(seed: int, n: int) -> list[Usage]:
    import random

    rng = random.Random(seed)
    found = []
    for _ in range(n):
        total = rng.choice((rng.randint(0, 2_000), rng.randint(0, 400_000)))  # short prompts and long ones
        cached = rng.randint(0, total)
        found.append(Usage(total, rng.randint(0, 50_000), cached, rng.randint(0, total - cached)))
    return found


def test_rates_give_genai_prices_own_figure_for_every_model_it_knows(config):
    from genai_prices import data_snapshot

    from routecli.pricing import linear_rates

    at = datetime.now(timezone.utc)
    linear = tiered = 0
    for vendor in data_snapshot.get_snapshot().providers:
        if not vendor.models:
            continue
        cfg = dataclasses.replace(config, providers={**config.providers, "p": dataclasses.replace(
            ProviderConfig("p", "openai", "https://example.invalid/v1", None), pricing_provider=vendor.id)})
        for model in vendor.models:
            ref = ModelRef("p", model.id)
            rates = linear_rates(ref, cfg, at)
            if rates is None:
                tiered += 1
                continue
            linear += 1
            for usage in _usages(len(model.id), 2):
                assert rates.price(usage) == price(usage, ref, cfg, at=at), (vendor.id, model.id, usage)
    assert linear > 1_000 and linear > 5 * tiered  # the fast path is the usual one


def test_tiered_prices_are_not_read_as_rates(config):
    from routecli.pricing import linear_rates

    config = with_provider(config, "google", "https://generativelanguage.googleapis.com/v1beta", kind="gemini")
    at = datetime.now(timezone.utc)
    from routecli.pricing import _tiered, price_basis

    gemini, mini = ModelRef("google", "gemini-2.5-pro"), ModelRef("openai", "gpt-4o-mini")
    assert _tiered(price_basis(gemini, config, at)) and not _tiered(price_basis(mini, config, at))
    assert linear_rates(gemini, config, at) is None  # dearer above 200k input tokens
    assert linear_rates(mini, config, at) is not None


@pytest.mark.parametrize("ref", ["openai:gpt-4o-mini", "google:gemini-2.5-pro", "openai:no-such-model-xyz",
                                 "ollama:llama3.2", "anthropic:claude-haiku-4-5"])
def test_price_memo_prices_as_price_does(config, ref):
    from routecli.pricing import PriceMemo

    config = with_provider(config, "google", "https://generativelanguage.googleapis.com/v1beta", kind="gemini")
    model = ModelRef(*ref.split(":"))
    memo = PriceMemo(config)
    odd = [Usage(10, 5, 50), Usage(0, 0), Usage(300_000, 10, 1_000), USAGE]  # more cached than sent; nothing; long
    for usage in _usages(7, 20) + odd:
        at = datetime.fromtimestamp(int(time.time() // 60) * 60, timezone.utc)
        assert memo(usage, model) == price(usage, model, config, at=at), usage


def test_price_memo_reads_rates_again_only_when_the_price_entry_changes(config, monkeypatch):
    import routecli.pricing as pricing
    from routecli.pricing import PriceMemo

    reads: list[ModelRef] = []
    real = pricing.linear_rates
    monkeypatch.setattr(pricing, "linear_rates", lambda ref, cfg, at: reads.append(ref) or real(ref, cfg, at))
    now = [1_800_000_000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    memo, ref = PriceMemo(config), ModelRef("openai", "gpt-4o-mini")
    first = memo(USAGE, ref)
    now[0] += 3_600  # an hour on: the same genai-prices entry, so the same rates
    assert memo(USAGE, ref) == first and reads == [ref]
    entry = object()  # a price that changes with the time of day: another entry is in force
    monkeypatch.setattr(pricing, "price_basis", lambda *_args: entry)
    now[0] += 60
    assert memo(USAGE, ref) == first and reads == [ref, ref]
