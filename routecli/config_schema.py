"""Turn the merged config dict into a validated `Config`; every complaint names the key and the fix."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Mapping

from routecli.config import (
    PROVIDER_KINDS,
    AlertConfig,
    Config,
    EscalationConfig,
    JudgeConfig,
    ModelCaps,
    PriceOverride,
    ProviderConfig,
)
from routecli.config_guards import GUARD_SETTABLE, build_guards
from routecli.domain import ModelRef
from routecli.errors import ConfigError, UsageError

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")  # no dots: names are parts of dotted keys
CLASSIFIERS = ("rules", "learned")  # kept in step with routecli.routing.CLASSIFIERS by a test

# key pattern -> value type; `config set` refuses anything else, listing these.
SETTABLE: dict[str, str] = {
    "routing.tier_order": "list",
    "routing.baseline": "str",
    "routing.classifier": "str",
    "routing.thresholds.<tier>": "float",
    "routing.target_shares.<tier>": "float",
    "tiers.<tier>.models": "list",
    "providers.<name>.kind": "str",
    "providers.<name>.base_url": "str",
    "providers.<name>.api_key_env": "str",
    "providers.<name>.connect_timeout": "float",
    "providers.<name>.read_timeout": "float",
    "providers.<name>.pricing_provider": "str",
    "providers.<name>.rpm": "int",
    "providers.<name>.tpm": "int",
    "providers.<name>.threads": "int",
    "providers.<name>.context_size": "int",
    "models.<provider:model>.vision": "bool",
    "models.<provider:model>.tools": "bool",
    "models.<provider:model>.context_window": "int",
    "prices.<provider:model>": "price",
    "prices.<provider:model>.input_mtok": "float",
    "prices.<provider:model>.output_mtok": "float",
    "prices.<provider:model>.cached_input_mtok": "float",
    "http.connect_timeout": "float",
    "http.read_timeout": "float",
    "store.save_text": "bool",
    "store.db": "str",
    "limits.max_prompt_chars": "int",
    "limits.default_max_tokens": "int",
    "judge.enabled": "bool",
    "judge.model": "str",
    "judge.band": "floats",
    "judge.timeout": "float",
    "policies.agent_min_tier.<agent>": "str",
    "policies.domain_min_tier.<domain>": "str",
    **GUARD_SETTABLE,
    "escalation.enabled": "bool",
    "escalation.threshold": "float",
    "escalation.max_escalations": "int",
    **{f"alerts.{name}": kind for name, kind in (
        ("enabled", "bool"), ("window_hours", "float"), ("min_requests", "int"), ("budget_share", "float"),
        ("escalation_rate", "float"), ("error_rate", "float"), ("anomaly_factor", "float"), ("anomaly_days", "int"),
        ("min_savings", "float"), ("min_confidence", "float"))},
}


def match_key(parts: list[str]) -> str | None:
    """The SETTABLE pattern that dotted key parts fit, if any."""
    for pattern in SETTABLE:
        shape = pattern.split(".")
        if len(shape) == len(parts) and all(
            s == p or (s.startswith("<") and bool(p)) for s, p in zip(shape, parts)
        ):
            return pattern
    return None


def _check_known_keys(raw: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> None:
    """A misspelt key would otherwise be ignored in silence; refuse it, listing its neighbours."""
    for name, value in raw.items():
        parts = prefix + (name,)
        if isinstance(value, Mapping):
            _check_known_keys(value, parts)
        elif not match_key(list(parts)):
            section = parts[0]
            near = sorted({p.split(".", 1)[1] for p in SETTABLE if p.startswith(section + ".")})
            hint = f"keys under {section}: {', '.join(near)}" if near else f"sections: {_sections()}"
            raise _fail(".".join(parts), f"is not a setting routecli knows; check the spelling ({hint})")


def _sections() -> str:
    return ", ".join(sorted({p.split(".")[0] for p in SETTABLE}))


def _fail(key: str, problem: str) -> ConfigError:
    return ConfigError(f"Config key {key}: {problem}")


def _table(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, Mapping):
        raise _fail(key, f"must be a table ([{key}]), got {type(value).__name__}")
    return value


def _number(value: Any, key: str, *, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(key, f"must be a number, got {value!r}")
    if positive and value <= 0:
        raise _fail(key, f"must be greater than 0, got {value!r}")
    return float(value)


def _integer(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _fail(key, f"must be a whole number above 0, got {value!r}")
    return value


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(key, f"must be true or false, got {value!r}")
    return value


def _ref(value: Any, key: str, providers: Mapping[str, ProviderConfig]) -> ModelRef:
    if not isinstance(value, str):
        raise _fail(key, f"must be a \"provider:model\" string, got {value!r}")
    try:
        ref = ModelRef.parse(value)
    except UsageError as exc:
        raise _fail(key, str(exc)) from None
    if ref.provider not in providers:
        known = ", ".join(sorted(providers))
        raise _fail(key, f"unknown provider {ref.provider!r} in {value!r}; known providers: {known}")
    return ref


def _provider(name: str, entry: Any, http: Mapping[str, Any]) -> ProviderConfig:
    key = f"providers.{name}"
    if not isinstance(entry, Mapping):
        raise _fail(key, "must be a table with kind, base_url and api_key_env")
    if not NAME.match(name):
        raise _fail(key, "a provider name may use letters, digits, '_' and '-' only")
    kind = entry.get("kind")
    if kind not in PROVIDER_KINDS:
        raise _fail(f"{key}.kind", f"must be one of {', '.join(PROVIDER_KINDS)}, got {kind!r}")
    base_url = entry.get("base_url", "" if kind == "llamacpp" else None)  # llamacpp runs in-process
    if kind != "llamacpp" and (not isinstance(base_url, str) or not re.match(r"^https?://[^\s/]+", base_url)):
        raise _fail(f"{key}.base_url", f"must be an http(s) URL, got {base_url!r}")
    env = entry.get("api_key_env")
    if env is not None and (not isinstance(env, str) or not ENV_NAME.match(env)):
        raise _fail(f"{key}.api_key_env", f"must be an environment variable name, got {env!r}")
    timeouts = {
        field: _number(entry.get(field, http.get(field, default)), f"{key}.{field}")
        for field, default in (("connect_timeout", 10.0), ("read_timeout", 120.0))
    }
    pricing = entry.get("pricing_provider")
    if pricing is not None and (not isinstance(pricing, str) or not NAME.match(pricing)):
        raise _fail(f"{key}.pricing_provider", f"must be a genai-prices provider id such as openai, got {pricing!r}")
    limits = {field: None if entry.get(field) is None else _integer(entry[field], f"{key}.{field}")
              for field in ("rpm", "tpm", "threads")}
    context = _integer(entry.get("context_size", 4096), f"{key}.context_size")
    return ProviderConfig(name, kind, str(base_url).rstrip("/"), env, **timeouts, pricing_provider=pricing,
                          context_size=context, **limits)


def _price(key: str, entry: Any) -> PriceOverride:
    if not isinstance(entry, Mapping):
        raise _fail(key, "must be a table with input_mtok and output_mtok (USD per 1M tokens)")
    values: dict[str, Decimal | None] = {}
    for field in ("input_mtok", "output_mtok", "cached_input_mtok"):
        value = entry.get(field)
        if value is None:
            if field != "cached_input_mtok":
                raise _fail(
                    f"{key}.{field}",
                    f"is required; set both at once with `routecli config set {key} INPUT,OUTPUT` (USD per 1M tokens)",
                )
            values[field] = None
            continue
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            amount = Decimal(-1)
        if isinstance(value, bool) or not amount.is_finite() or amount < 0:
            raise _fail(f"{key}.{field}", f"must be a price of 0 or more, got {value!r}")
        values[field] = amount
    return PriceOverride(values["input_mtok"], values["output_mtok"], values["cached_input_mtok"])


def _tiers(raw: Mapping[str, Any], providers: Mapping[str, ProviderConfig]) -> dict[str, tuple[ModelRef, ...]]:
    tiers = {}
    for name, entry in _table(raw, "tiers").items():
        key = f"tiers.{name}.models"
        if not NAME.match(name):
            raise _fail(f"tiers.{name}", "a tier name may use letters, digits, '_' and '-' only")
        models = entry.get("models") if isinstance(entry, Mapping) else None
        if not isinstance(models, list) or not models:
            raise _fail(key, "must be a non-empty list of \"provider:model\" refs")
        tiers[name] = tuple(_ref(item, key, providers) for item in models)
    return tiers


def _routing(routing: Mapping[str, Any], tiers: Mapping[str, Any]) -> tuple[tuple[str, ...], dict[str, float]]:
    order = routing.get("tier_order")
    if not isinstance(order, list) or not order or not all(isinstance(t, str) for t in order):
        raise _fail("routing.tier_order", "must be a non-empty list of tier names, cheapest first")
    missing = [t for t in order if t not in tiers]
    if missing:
        raise _fail(
            "routing.tier_order",
            f"names tier {missing[0]!r} with no [tiers.{missing[0]}]; defined tiers: {', '.join(sorted(tiers))}",
        )
    if len(set(order)) != len(order):
        raise _fail("routing.tier_order", "lists a tier twice")
    raw_thresholds = routing.get("thresholds", {})
    if not isinstance(raw_thresholds, Mapping):
        raise _fail("routing.thresholds", "must be a table of tier = lowest score (0..1)")
    thresholds: dict[str, float] = {}
    previous = 0.0
    for tier in order[1:]:
        key = f"routing.thresholds.{tier}"
        if tier not in raw_thresholds:
            raise _fail(key, "is missing: every tier after the first needs the lowest score that reaches it")
        value = _number(raw_thresholds[tier], key, positive=False)
        if not 0.0 < value <= 1.0 or value <= previous:
            raise _fail(key, f"must be in (0, 1] and above the previous tier's threshold, got {value!r}")
        thresholds[tier] = previous = value
    return tuple(order), thresholds


def build_config(raw: Mapping[str, Any], *, source: Path | None = None) -> Config:
    _check_known_keys(raw)
    http = _table(raw, "http")
    providers = {name: _provider(name, entry, http) for name, entry in _table(raw, "providers").items()}
    tiers = _tiers(raw, providers)
    routing = _table(raw, "routing")
    tier_order, thresholds = _routing(routing, tiers)
    baseline = routing.get("baseline")
    classifier = routing.get("classifier", "rules")
    if classifier not in CLASSIFIERS:
        raise _fail("routing.classifier", f"must be one of {', '.join(CLASSIFIERS)}, got {classifier!r}")
    models = {}
    for ref, entry in _table(raw, "models").items():
        _ref(ref, f"models.{ref}", providers)
        entry = entry if isinstance(entry, Mapping) else {}
        window = entry.get("context_window")
        models[ref] = ModelCaps(
            vision=_bool(entry.get("vision", False), f"models.{ref}.vision"),
            tools=_bool(entry.get("tools", True), f"models.{ref}.tools"),
            context_window=None if window is None else _integer(window, f"models.{ref}.context_window"),
        )
    prices = {ref: _price(f"prices.{ref}", entry) for ref, entry in _table(raw, "prices").items()}
    _check_db_setting(_table(raw, "store").get("db"))
    limits = _table(raw, "limits")
    agent_min, domain_min = _policies(_table(raw, "policies"), tiers)
    return Config(
        providers=providers,
        tier_order=tier_order,
        tiers=tiers,
        thresholds=thresholds,
        baseline=None if baseline in (None, "") else _ref(baseline, "routing.baseline", providers),
        classifier=classifier,
        models=models,
        prices=prices,
        save_text=_bool(_table(raw, "store").get("save_text", True), "store.save_text"),
        max_prompt_chars=_integer(limits.get("max_prompt_chars", 1_000_000), "limits.max_prompt_chars"),
        default_max_tokens=_integer(limits.get("default_max_tokens", 4096), "limits.default_max_tokens"),
        judge=_judge(_table(raw, "judge"), providers),
        escalation=_escalation(_table(raw, "escalation")),
        alerts=_alerts(_table(raw, "alerts")),
        guards=build_guards(raw, tiers),
        target_shares=_target_shares(routing, tier_order),
        agent_min_tier=agent_min,
        domain_min_tier=domain_min,
        source_path=source,
    )


def _policies(policies: Mapping[str, Any], tiers: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    from routecli.routing.signals import DOMAINS

    tables = []
    for name in ("agent_min_tier", "domain_min_tier"):
        table = policies.get(name, {})
        if not isinstance(table, Mapping):
            raise _fail(f"policies.{name}", "must be a table of name = tier")
        for key, tier in table.items():
            if tier not in tiers:
                raise _fail(f"policies.{name}.{key}", f"names tier {tier!r}; defined tiers: {', '.join(sorted(tiers))}")
            if name == "domain_min_tier" and key not in DOMAINS:
                raise _fail(f"policies.{name}.{key}", f"unknown domain; domains: {', '.join(DOMAINS)}")
        tables.append(dict(table))
    return tables[0], tables[1]


def _judge(judge: Mapping[str, Any], providers: Mapping[str, ProviderConfig]) -> JudgeConfig:
    band = judge.get("band", [0.4, 0.6])
    if (
        not isinstance(band, list) or len(band) != 2
        or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in band)
        or not 0.0 <= band[0] <= band[1] <= 1.0
    ):
        raise _fail("judge.band", f"must be [low, high] with 0 <= low <= high <= 1, got {band!r}")
    model = judge.get("model")
    return JudgeConfig(
        enabled=_bool(judge.get("enabled", False), "judge.enabled"),
        model=None if model in (None, "") else _ref(model, "judge.model", providers),
        band=(float(band[0]), float(band[1])),
        timeout=_number(judge.get("timeout", 5.0), "judge.timeout"),
    )


def _escalation(table: Mapping[str, Any]) -> EscalationConfig:
    threshold = _number(table.get("threshold", 0.7), "escalation.threshold", positive=False)
    if not 0.0 <= threshold <= 1.0:
        raise _fail("escalation.threshold", f"must be between 0 and 1 (0.7 by default), got {threshold!r}")
    most = table.get("max_escalations", 1)
    if isinstance(most, bool) or not isinstance(most, int) or most < 0:
        raise _fail("escalation.max_escalations", f"must be a whole number, 0 or more (0: never retry), got {most!r}")
    return EscalationConfig(_bool(table.get("enabled", True), "escalation.enabled"), threshold, most)


_ALERT_SHARES = ("budget_share", "escalation_rate", "error_rate", "min_savings", "min_confidence")


def _alerts(table: Mapping[str, Any]) -> AlertConfig:
    """[alerts]; each rule's threshold 0 turns it off."""
    default = AlertConfig()
    values: dict[str, Any] = {"enabled": _bool(table.get("enabled", True), "alerts.enabled")}
    for name in _ALERT_SHARES:
        value = _number(table.get(name, getattr(default, name)), f"alerts.{name}", positive=False)
        if not 0.0 <= value <= 1.0:
            raise _fail(f"alerts.{name}", f"must be a share between 0 and 1 (0 turns the rule off), got {value!r}")
        values[name] = value
    factor = _number(table.get("anomaly_factor", default.anomaly_factor), "alerts.anomaly_factor", positive=False)
    if factor != 0 and factor < 1:
        raise _fail("alerts.anomaly_factor", f"must be 1 or more times the median day (0 turns it off), got {factor!r}")
    return AlertConfig(
        **values,
        anomaly_factor=factor,
        window_hours=_number(table.get("window_hours", default.window_hours), "alerts.window_hours"),
        min_requests=_integer(table.get("min_requests", default.min_requests), "alerts.min_requests"),
        anomaly_days=_integer(table.get("anomaly_days", default.anomaly_days), "alerts.anomaly_days"),
    )


def _target_shares(routing: Mapping[str, Any], tier_order: tuple[str, ...]) -> dict[str, float]:
    shares = routing.get("target_shares", {})
    if not isinstance(shares, Mapping):
        raise _fail("routing.target_shares", "must be a table of tier = share (0..1), as `routecli calibrate` writes")
    for tier, share in shares.items():
        if tier not in tier_order:
            raise _fail(f"routing.target_shares.{tier}", f"names a tier not in routing.tier_order ({', '.join(tier_order)})")
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
            raise _fail(f"routing.target_shares.{tier}", f"must be a share between 0 and 1, got {share!r}")
    return {tier: float(share) for tier, share in shares.items()}


def _check_db_setting(value: Any) -> None:
    """The ledger's location may be in the config file, but never a password: config files get shown and shared."""
    if value is None:
        return
    if not isinstance(value, str) or not value.strip():
        raise _fail("store.db", f"must be a path or a postgresql:// URL, got {value!r}")
    if re.match(r"^[a-z+]+://[^/@]*:[^/@]*@", value) or "password=" in value:
        raise _fail("store.db", "holds a password; remove it and put it in PGPASSWORD or ~/.pgpass instead")
