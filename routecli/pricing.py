"""What a call cost, in exact decimal dollars, and where that price came from.

Order: a config override, else the genai-prices data (the provider's `pricing_provider`,
else matched by its base URL), else unknown. An unknown price is `None`, never $0: a local server we cannot
identify is not assumed to be free unless the config says so ("ollama:*" at 0).
genai-prices is imported lazily: it costs ~100 ms, which `routecli --help` must not pay.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
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


def context_window(ref: ModelRef, config: Config) -> int | None:
    """The model's context window in tokens from the genai-prices data, when it knows one."""
    import genai_prices

    for lookup in _lookups(config.provider(ref.provider)):
        try:
            _provider, model = genai_prices.data_snapshot.get_snapshot().find_provider_model(
                ref.model, None, lookup.get("provider_id"), lookup.get("provider_api_url")
            )
        except LookupError:
            continue
        window = getattr(model, "context_window", None)
        return int(window) if window else None
    return None


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
