"""What a call cost, in exact decimal dollars, and where that price came from.

Order: a config override, else the genai-prices data (the provider's `pricing_provider`,
else matched by its base URL), else unknown. An unknown price is `None`, never $0: a local server we cannot
identify is not assumed to be free unless the config says so ("ollama:*" at 0).
genai-prices is imported lazily: it costs ~100 ms, which `routecli --help` must not pay.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import urlsplit

from routecli.config import Config, PriceOverride, ProviderConfig
from routecli.domain import ModelRef, Usage

UNKNOWN = "unknown"
NO_USAGE = "no usage"  # the vendor reported no token counts, so there is nothing to price
NO_BASELINE = "no baseline"
CONFIG = "config"
LOCAL = "local (in-process)"

_PER_MTOK = Decimal(1_000_000)
_MICRO = Decimal("0.000001")

# kind -> (the vendor's official API host, genai-prices provider id). Only these hosts may
# be priced by kind when the URL lookup fails; any other server stays unknown.
_OFFICIAL = {
    "openai": ("api.openai.com", "openai"),
    "anthropic": ("api.anthropic.com", "anthropic"),
    "gemini": ("generativelanguage.googleapis.com", "google"),
}


@dataclass(frozen=True, slots=True)
class Price:
    cost: Decimal | None  # USD; None when unknown
    source: str  # "config", "genai-prices <version>", "unknown", "no usage", "no baseline"


def price(usage: Usage | None, ref: ModelRef, config: Config, *, at: datetime | None = None) -> Price:
    """The cost of `usage` on `ref`. `at` picks time-dependent prices (default: now)."""
    if usage is None:
        return Price(None, NO_USAGE)
    override = config.price_override(ref)
    if override is not None:
        return Price(override_cost(usage, override), CONFIG)
    if config.provider(ref.provider).kind == "llamacpp":
        return Price(Decimal(0), LOCAL)  # runs in this process: no one bills for it
    return _genai_price(usage, ref.model, config.provider(ref.provider), at)


def baseline_price(usage: Usage | None, config: Config, *, at: datetime | None = None) -> Price:
    """What the baseline (strongest) model would have cost for the same tokens."""
    if config.baseline is None:
        return Price(None, NO_BASELINE)
    return price(usage, config.baseline, config, at=at)


def override_cost(usage: Usage, override: PriceOverride) -> Decimal:
    """USD for `usage` at per-million-token prices; cache writes are charged as input."""
    cached_rate = override.input_mtok if override.cached_input_mtok is None else override.cached_input_mtok
    uncached = max(usage.input_tokens - usage.cached_tokens, 0)
    total = (
        uncached * override.input_mtok
        + usage.cached_tokens * cached_rate
        + usage.output_tokens * override.output_mtok
    )
    return total / _PER_MTOK


def _lookups(provider: ProviderConfig) -> list[dict[str, str]]:
    """How to find the provider in genai-prices: as configured, else by URL, else by official host."""
    if provider.pricing_provider:
        return [{"provider_id": provider.pricing_provider}]
    lookups = [{"provider_api_url": provider.base_url}]
    official = _OFFICIAL.get(provider.kind)
    if official and _host(provider.base_url) == official[0]:
        lookups.append({"provider_id": official[1]})
    return lookups


def _genai_price(usage: Usage, model: str, provider: ProviderConfig, at: datetime | None) -> Price:
    import genai_prices

    theirs = genai_prices.Usage(
        input_tokens=usage.input_tokens,  # both count cache reads and writes inside input
        cache_read_tokens=usage.cached_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        output_tokens=usage.output_tokens,  # reasoning tokens are inside output for both
    )
    for lookup in _lookups(provider):
        try:
            result = genai_prices.calc_price(theirs, model, genai_request_timestamp=at, **lookup)
        except LookupError:
            continue
        except ValueError:
            break  # inconsistent token counts (e.g. more cached than input): do not guess
        return Price(Decimal(result.total_price), f"genai-prices {genai_prices.__version__} ({result.provider.id})")
    return Price(None, UNKNOWN)


@dataclass(frozen=True, slots=True)
class Rates:
    """A model's price as a fixed charge per call plus a rate per kind of token, read off
    `price()` itself (see `linear_rates`), so pricing a reply is a few multiplications."""

    base: Decimal  # a call's own charge (e.g. Perplexity's per-request fee), usually 0
    per_million: tuple[Decimal, Decimal, Decimal, Decimal]  # uncached input, cache read, cache write, output
    source: str

    def price(self, usage: Usage) -> Price | None:
        """The price of `usage`; None for counts that do not add up (price() says what those cost)."""
        uncached = usage.input_tokens - usage.cached_tokens - usage.cache_write_tokens
        if uncached < 0 or usage.cached_tokens < 0 or usage.cache_write_tokens < 0 or usage.output_tokens < 0:
            return None
        a, b, c, d = self.per_million
        tokens = uncached * a + usage.cached_tokens * b + usage.cache_write_tokens * c + usage.output_tokens * d
        return Price(self.base + tokens / _PER_MTOK, self.source)


_MTOK = 1_000_000
_BASIS = (Usage(0, 0), Usage(_MTOK, 0), Usage(_MTOK, 0, _MTOK), Usage(_MTOK, 0, 0, _MTOK), Usage(0, _MTOK))
# usages off the basis, one small and one large, on which the rates must give price()'s own figure
_CHECKS = (Usage(1_234, 567, 89, 10), Usage(3_456_789, 234_567, 123_456, 45_678))


def linear_rates(ref: ModelRef, config: Config, at: datetime) -> Rates | None:
    """`ref`'s price at `at` as Rates, or None when it is not linear in the token counts
    (tiered prices, as Gemini's above 200k input tokens) or is unknown.

    genai-prices takes ~100 µs to price one usage (it decomposes the usage by its unit
    registry each time), and a reply's counts are new each time: priced twice per answer
    (model and baseline), that was a quarter of what serve adds to a request. Every
    non-tiered price in its data is a fixed charge plus a rate per token kind (checked on all
    of them by tests/test_pricing.py), so five prices on a basis give the rates and two
    more confirm them."""
    if _tiered(price_basis(ref, config, at)):
        return None
    known = [price(usage, ref, config, at=at) for usage in _BASIS]
    if any(p.cost is None or p.source != known[0].source for p in known):
        return None
    base = known[0].cost
    assert base is not None
    uncached, cache_read, cache_write, output = (p.cost - base for p in known[1:])  # type: ignore[operator]
    rates = Rates(base, (uncached, cache_read, cache_write, output), known[0].source)
    if any(rates.price(usage) != price(usage, ref, config, at=at) for usage in _CHECKS):
        return None
    return rates


def price_basis(ref: ModelRef, config: Config, at: datetime) -> object:
    """What `ref`'s price at `at` is worked out from: its config override, the local model, or
    genai-prices' price entry in force then (None: none known). Rates read off one basis hold for
    as long as the basis is the same object."""
    override = config.price_override(ref)
    if override is not None:
        return override
    if config.provider(ref.provider).kind == "llamacpp":
        return LOCAL
    model = _model_info(ref, config)
    return None if model is None else model.get_prices(at)


def _tiered(basis: object) -> bool:
    """Whether a price basis (price_basis()) is genai-prices' and priced in tiers (by prompt size)."""
    if basis is None or isinstance(basis, (PriceOverride, str)):  # no need to import genai-prices
        return False
    from genai_prices.types import ModelPrice, TieredPrices

    return isinstance(basis, ModelPrice) and any(isinstance(v, TieredPrices) for v in vars(basis).values())


def _model_info(ref: ModelRef, config: Config) -> Any:
    """genai-prices' ModelInfo for `ref` (found as price() finds it), or None."""
    from genai_prices import data_snapshot

    for lookup in _lookups(config.provider(ref.provider)):
        try:
            return data_snapshot.get_snapshot().find_provider_model(
                ref.model, None, lookup.get("provider_id"), lookup.get("provider_api_url"))[1]
        except LookupError:
            continue
    return None


class PriceMemo:
    """Prices at the start of this minute (so a price that depends on the time of day is right
    to the minute): a model's rates when its price is linear in the token counts
    (`pricing.linear_rates`), kept while genai-prices' entry for it stays the same, else each
    (model, usage) pair asked for, since genai-prices takes ~100 µs a call and a batch or serve
    asks for every reply's counts."""

    MAX_ENTRIES = 10_000

    def __init__(self, config: Config) -> None:
        self.config = config
        self._minute = -1  # minutes since the epoch
        self._rates: dict[ModelRef, tuple[object, Rates | None]] = {}  # model -> (price basis, rates)
        self._checked: set[ModelRef] = set()  # models whose basis was looked up this minute
        self._known: dict[tuple[Usage, ModelRef], Price] = {}

    def __call__(self, usage: Usage, ref: ModelRef) -> Price:
        minute = int(time.time() // 60)
        if minute != self._minute or len(self._known) >= self.MAX_ENTRIES:
            self._minute, self._checked, self._known = minute, set(), {}
        if ref not in self._checked:
            self._rates[ref] = self._current(ref)
            self._checked.add(ref)
        rates = self._rates[ref][1]
        found = rates.price(usage) if rates is not None else None
        if found is not None:
            return found
        key = (usage, ref)
        known = self._known.get(key)
        if known is None:
            known = self._known[key] = price(usage, ref, self.config, at=self._at())
        return known

    def _current(self, ref: ModelRef) -> tuple[object, Rates | None]:
        """(basis, rates) for this minute: the last ones if the basis has not changed, since
        reading rates off genai-prices takes ~1 ms and a time-of-day price changes rarely."""
        basis = price_basis(ref, self.config, self._at())
        last = self._rates.get(ref)
        if last is not None and last[0] is basis:
            return last
        return basis, linear_rates(ref, self.config, self._at())

    def _at(self) -> datetime:
        return datetime.fromtimestamp(self._minute * 60, timezone.utc)


def context_window(ref: ModelRef, config: Config) -> int | None:
    """The model's context window in tokens from the genai-prices data, when it knows one."""
    window = getattr(_model_info(ref, config), "context_window", None)
    return int(window) if window else None


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def to_micros(amount: Decimal | None) -> int | None:
    """Whole micro-dollars for the database, rounded half up."""
    if amount is None:
        return None
    return int((amount * 1_000_000).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def from_micros(micros: int | None) -> Decimal | None:
    """Dollars, exactly, with six decimal places."""
    if micros is None:
        return None
    return Decimal(int(micros)).scaleb(-6).quantize(_MICRO)


def format_usd(amount: Decimal | None) -> str | None:
    """Plain decimal text ("0.000442", never "4.42E-4") for JSON and CSV."""
    return None if amount is None else format(amount, "f")
