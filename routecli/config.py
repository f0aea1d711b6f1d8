"""Configuration: where routecli keeps its files, what the config file holds, and API keys.

Lookup order for the config file: `ROUTECLI_CONFIG`, else `<app dir>/config.toml`.
App dir: `ROUTECLI_HOME`, else `typer.get_app_dir("routecli")`.
The file is deep-merged over the built-in defaults (`routecli.defaults.DEFAULTS`),
so a user's file only needs what differs.
"""

from __future__ import annotations

import copy
import os
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Mapping

from routecli.config_guards import Guards
from routecli.domain import ModelRef
from routecli.errors import ConfigError, UsageError

PROVIDER_KINDS = ("openai", "anthropic", "gemini", "llamacpp")  # llamacpp: in-process, no base_url


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    name: str
    kind: str  # one of PROVIDER_KINDS: the wire format
    base_url: str
    api_key_env: str | None  # None: the provider needs no key (a local server)
    connect_timeout: float = 10.0
    read_timeout: float = 120.0  # longest silence between bytes of a response
    pricing_provider: str | None = None  # genai-prices provider id, for proxies; else found by base_url
    rpm: int | None = None  # requests per minute `routecli batch` keeps under; None: no limit
    tpm: int | None = None  # tokens (prompt + answer) per minute, likewise
    threads: int | None = None  # llamacpp: CPU threads; None: half the cores generate, all read the prompt
    context_size: int = 4096  # llamacpp: tokens of prompt + answer the loaded model holds


@dataclass(frozen=True, slots=True)
class ModelCaps:
    vision: bool = False
    tools: bool = True  # can take function/tool definitions
    context_window: int | None = None  # tokens; None: ask genai-prices, else assume it fits


_NO_CAPS = ModelCaps()  # frozen: one for every model the config says nothing about


@dataclass(frozen=True, slots=True)
class PriceOverride:
    """USD per million tokens; replaces genai-prices for one model (or "provider:*")."""

    input_mtok: Decimal
    output_mtok: Decimal
    cached_input_mtok: Decimal | None = None  # defaults to input_mtok


@dataclass(frozen=True, slots=True)
class JudgeConfig:
    """Phase 2: a small model decides requests whose score falls inside `band`."""

    enabled: bool = False
    model: ModelRef | None = None
    band: tuple[float, float] = (0.4, 0.6)
    timeout: float = 5.0  # seconds; past it the phase-1 decision stands


@dataclass(frozen=True, slots=True)
class EscalationConfig:
    """Retry one tier up when routing.assess scores an answer below `threshold`."""

    enabled: bool = True
    threshold: float = 0.7  # 0..1; an answer with no warning sign scores 0.9
    max_escalations: int = 1  # per request; 0 assesses and records, never retries


@dataclass(frozen=True, slots=True)
class AlertConfig:
    """[alerts]: rules checked after each run and by `routecli alerts`; a rule set to 0 is off."""

    enabled: bool = True
    window_hours: float = 24.0  # the rate rules look this far back
    min_requests: int = 20  # fewer requests (or calls, for a model) than this prove nothing
    budget_share: float = 0.8  # a [budgets] limit this share spent
    escalation_rate: float = 0.3  # share of requests escalated
    error_rate: float = 0.2  # share of one model's calls that failed
    anomaly_factor: float = 3.0  # today's spend above k x the median day...
    anomaly_days: int = 7  # ...of this many days before it
    min_savings: float = 0.1  # share saved against the baseline
    min_confidence: float = 0.5  # mean confidence of answers


@dataclass(frozen=True, slots=True)
class Config:
    providers: Mapping[str, ProviderConfig]
    tier_order: tuple[str, ...]
    tiers: Mapping[str, tuple[ModelRef, ...]]
    thresholds: Mapping[str, float]  # tier -> lowest score that reaches it
    baseline: ModelRef | None
    classifier: str = "rules"
    models: Mapping[str, ModelCaps] = field(default_factory=dict)
    prices: Mapping[str, PriceOverride] = field(default_factory=dict)
    save_text: bool = True  # store prompt and answer text in the ledger
    max_prompt_chars: int = 1_000_000
    default_max_tokens: int = 4096  # answer cap when the request sets none (Anthropic requires one)
    agent_min_tier: Mapping[str, str] = field(default_factory=dict)  # agent -> lowest tier it may get
    domain_min_tier: Mapping[str, str] = field(default_factory=dict)  # signals' domain -> lowest tier
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    escalation: EscalationConfig = field(default_factory=EscalationConfig)
    guards: Guards = field(default_factory=Guards)
    target_shares: Mapping[str, float] = field(default_factory=dict)  # what `routecli calibrate` aimed at  # budgets, fallbacks, breakers, cache
    alerts: AlertConfig = field(default_factory=AlertConfig)
    source_path: Path | None = None  # the file it was read from, if any

    def provider(self, name: str) -> ProviderConfig:
        try:
            return self.providers[name]
        except KeyError:
            known = ", ".join(sorted(self.providers)) or "none"
            raise UsageError(
                f"Unknown provider {name!r} (known: {known}); add [providers.{name}] to the config"
            ) from None

    def caps(self, ref: ModelRef) -> ModelCaps:
        return self.models.get(str(ref), _NO_CAPS)

    def price_override(self, ref: ModelRef) -> PriceOverride | None:
        return self.prices.get(str(ref)) or self.prices.get(f"{ref.provider}:*")

    def all_models(self) -> list[tuple[str, ModelRef]]:
        """Every (tier, model) pair, tiers in routing order first, then the rest."""
        ordered = list(self.tier_order) + sorted(set(self.tiers) - set(self.tier_order))
        return [(tier, ref) for tier in ordered for ref in self.tiers.get(tier, ())]


# ---------------------------------------------------------------- paths


def app_dir() -> Path:
    home = os.environ.get("ROUTECLI_HOME")
    if home:
        return Path(home).expanduser()
    import typer  # only here: typer is the one place that knows each OS's app-dir convention

    return Path(typer.get_app_dir("routecli"))


def config_path() -> Path:
    override = os.environ.get("ROUTECLI_CONFIG")
    return Path(override).expanduser() if override else app_dir() / "config.toml"


def keys_path() -> Path:
    return app_dir() / "keys.toml"


def db_location(cli_db: str | None = None) -> str:
    """`--db` > `ROUTECLI_DB` > `store.db` in the config file > `<app dir>/routecli.db`: a path or a URL."""
    if cli_db or os.environ.get("ROUTECLI_DB"):
        return cli_db or os.environ["ROUTECLI_DB"]
    store = read_user_file().get("store")
    configured = store.get("db") if isinstance(store, Mapping) else None
    return configured if isinstance(configured, str) and configured else str(app_dir() / "routecli.db")


# ---------------------------------------------------------------- loading


def read_user_file(path: Path | None = None) -> dict[str, Any]:
    """The raw TOML of the user's config file, or {} when there is none."""
    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if os.environ.get("ROUTECLI_CONFIG"):
            raise ConfigError(
                f"ROUTECLI_CONFIG points at {path}, which does not exist; fix the path or unset it"
            ) from None
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read config {path}: {exc}; fix its permissions or encoding") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"Config {path} is not valid TOML ({exc}); fix it or move it away and run `routecli config init`"
        ) from None


def merged(user: Mapping[str, Any]) -> dict[str, Any]:
    from routecli.defaults import DEFAULTS

    return deep_merge(DEFAULTS, user)


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))  # callers edit the result; DEFAULTS must stay untouched
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(path: Path | None = None) -> Config:
    path = path or config_path()
    raw = merged(read_user_file(path))
    from routecli.config_schema import build_config

    return build_config(raw, source=path if path.exists() else None)
