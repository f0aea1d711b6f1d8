"""The guard rails' settings: budgets, fallbacks, circuit breakers and the response cache.

Kept apart from `config_schema` so each guard's defaults, validation and settable keys sit
together; `build_config` calls `build_guards` once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from routecli.errors import ConfigError

FALLBACK_KINDS = ("timeout", "server", "rate_limit", "connection", "stream_cut", "context_window", "refusal",
                  "malformed", "not_found", "auth")
PERIODS = ("daily", "monthly", "total")
ON_EXCEED = ("downgrade", "refuse")
DEFAULT_FALLBACK_ON = ("timeout", "server", "rate_limit", "connection", "stream_cut", "malformed", "context_window",
                       "refusal")

GUARD_SETTABLE: dict[str, str] = {
    **{f"budgets.{period}": "float" for period in PERIODS},
    **{f"budgets.agents.<agent>.{period}": "float" for period in PERIODS},
    **{f"budgets.tags.<tag>.{period}": "float" for period in PERIODS},
    "budgets.warn_share": "float",
    "budgets.on_exceed": "str",
    "fallbacks.enabled": "bool",
    "fallbacks.on": "list",
    "fallbacks.climb": "bool",
    "fallbacks.last_resort": "str",
    "fallbacks.max_attempts": "int",
    "breaker.enabled": "bool",
    "breaker.failures": "int",
    "breaker.failure_rate": "float",
    "breaker.window": "float",
    "breaker.min_calls": "int",
    "breaker.cooldown": "float",
    "cache.enabled": "bool",
    "cache.ttl": "float",
    "cache.max_entries": "int",
    "cache.similar": "bool",
    "cache.similarity": "float",
    "serve.host": "str",
    "serve.port": "int",
    "serve.max_body_bytes": "int",
    "serve.commit_interval_ms": "float",
    "serve.members.<name>": "str",
}


@dataclass(frozen=True, slots=True)
class Limits:
    """Dollar limits; None: no limit for that period."""

    daily: Decimal | None = None
    monthly: Decimal | None = None
    total: Decimal | None = None

    def items(self) -> list[tuple[str, Decimal]]:
        return [(period, limit) for period in PERIODS if (limit := getattr(self, period)) is not None]


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    limits: Limits = Limits()
    agents: Mapping[str, Limits] = field(default_factory=dict)
    tags: Mapping[str, Limits] = field(default_factory=dict)
    warn_share: float = 0.8  # share of a limit at which a warning is shown and an alert recorded
    on_exceed: str = "downgrade"  # downgrade: a cheaper tier that fits; refuse: stop with a message

    @property
    def active(self) -> bool:
        return bool(self.limits.items() or self.agents or self.tags)


@dataclass(frozen=True, slots=True)
class FallbackConfig:
    enabled: bool = True
    on: tuple[str, ...] = DEFAULT_FALLBACK_ON
    climb: bool = True  # after the tier's own models, the tiers above it
    last_resort: str | None = None  # a tier tried when everything else failed, e.g. "local"
    max_attempts: int = 4  # models tried per request, the first included


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    enabled: bool = True
    failures: int = 5  # consecutive failures that open the breaker
    failure_rate: float = 0.5  # or this share of failures within `window` seconds...
    window: float = 60.0
    min_calls: int = 10  # ...once the window has at least this many calls
    cooldown: float = 30.0  # seconds open before one probe call is let through


@dataclass(frozen=True, slots=True)
class CacheConfig:
    enabled: bool = True  # exact answers, for temperature-0 requests only
    ttl: float = 86_400.0  # seconds
    max_entries: int = 100_000
    similar: bool = False  # opt-in: also answer near-identical prompts (guard/similar.py)
    similarity: float = 0.95  # Jaccard of character 3-grams, numbers equal


@dataclass(frozen=True, slots=True)
class ServeConfig:
    host: str = "127.0.0.1"  # loopback unless the config says otherwise
    port: int = 8787
    max_body_bytes: int = 10_000_000
    # A row may wait this long to share its transaction with the next ones (0: each commits as it
    # comes). A crash (not a stop) loses at most this window of rows.
    commit_interval_ms: float = 500.0
    members: Mapping[str, str] = field(default_factory=dict)  # name -> sha256 of their bearer key


@dataclass(frozen=True, slots=True)
class Guards:
    budgets: BudgetConfig = BudgetConfig()
    fallbacks: FallbackConfig = FallbackConfig()
    breaker: BreakerConfig = BreakerConfig()
    cache: CacheConfig = CacheConfig()
    serve: ServeConfig = ServeConfig()


def _fail(key: str, problem: str) -> ConfigError:
    return ConfigError(f"Config key {key}: {problem}")


def _table(raw: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, Mapping):
        raise _fail(where, f"must be a table ([{where}]), got {type(value).__name__}")
    return value


def _dollars(value: Any, key: str) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        amount = Decimal(-1)
    if isinstance(value, bool) or not amount.is_finite() or amount < 0:
        raise _fail(key, f"must be an amount in dollars, 0 or more (e.g. 5.00), got {value!r}")
    return amount


def _limits(raw: Mapping[str, Any], where: str) -> Limits:
    return Limits(**{period: _dollars(raw.get(period), f"{where}.{period}") for period in PERIODS})


def _share(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise _fail(key, f"must be a share between 0 and 1 (e.g. 0.8), got {value!r}")
    return float(value)


def _positive(value: Any, key: str, kind: type = float) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 or (
            kind is int and not isinstance(value, int)):
        noun = "a whole number above 0" if kind is int else "a number above 0"
        raise _fail(key, f"must be {noun}, got {value!r}")
    return kind(value)


def _flag(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(key, f"must be true or false, got {value!r}")
    return value


def _budgets(raw: Mapping[str, Any]) -> BudgetConfig:
    on_exceed = raw.get("on_exceed", "downgrade")
    if on_exceed not in ON_EXCEED:
        raise _fail("budgets.on_exceed", f"must be one of {', '.join(ON_EXCEED)}, got {on_exceed!r}")
    groups = {}
    for group in ("agents", "tags"):
        table = _table(raw, group, f"budgets.{group}")
        groups[group] = {name: _limits(_table(table, name, f"budgets.{group}.{name}"), f"budgets.{group}.{name}")
                         for name in table}
    return BudgetConfig(
        limits=_limits(raw, "budgets"), agents=groups["agents"], tags=groups["tags"],
        warn_share=_share(raw.get("warn_share", 0.8), "budgets.warn_share"), on_exceed=on_exceed,
    )


def _fallbacks(raw: Mapping[str, Any], tiers: Mapping[str, Any]) -> FallbackConfig:
    kinds = raw.get("on", list(DEFAULT_FALLBACK_ON))
    if not isinstance(kinds, list) or any(kind not in FALLBACK_KINDS for kind in kinds):
        raise _fail("fallbacks.on", f"must be a list of error kinds from: {', '.join(FALLBACK_KINDS)}; got {kinds!r}")
    last = raw.get("last_resort")
    if last in ("", None):
        last = None
    elif last not in tiers:
        raise _fail("fallbacks.last_resort", f"names tier {last!r}; defined tiers: {', '.join(sorted(tiers))}")
    return FallbackConfig(
        enabled=_flag(raw.get("enabled", True), "fallbacks.enabled"), on=tuple(kinds),
        climb=_flag(raw.get("climb", True), "fallbacks.climb"), last_resort=last,
        max_attempts=_positive(raw.get("max_attempts", 4), "fallbacks.max_attempts", int),
    )


def _breaker(raw: Mapping[str, Any]) -> BreakerConfig:
    return BreakerConfig(
        enabled=_flag(raw.get("enabled", True), "breaker.enabled"),
        failures=_positive(raw.get("failures", 5), "breaker.failures", int),
        failure_rate=_share(raw.get("failure_rate", 0.5), "breaker.failure_rate"),
        window=_positive(raw.get("window", 60.0), "breaker.window"),
        min_calls=_positive(raw.get("min_calls", 10), "breaker.min_calls", int),
        cooldown=_positive(raw.get("cooldown", 30.0), "breaker.cooldown"),
    )


def _cache(raw: Mapping[str, Any]) -> CacheConfig:
    return CacheConfig(
        enabled=_flag(raw.get("enabled", True), "cache.enabled"),
        ttl=_positive(raw.get("ttl", 86_400.0), "cache.ttl"),
        max_entries=_positive(raw.get("max_entries", 100_000), "cache.max_entries", int),
        similar=_flag(raw.get("similar", False), "cache.similar"),
        similarity=_share(raw.get("similarity", 0.95), "cache.similarity"),
    )


def build_guards(raw: Mapping[str, Any], tiers: Mapping[str, Any]) -> Guards:
    return Guards(
        budgets=_budgets(_table(raw, "budgets", "budgets")),
        fallbacks=_fallbacks(_table(raw, "fallbacks", "fallbacks"), tiers),
        breaker=_breaker(_table(raw, "breaker", "breaker")),
        cache=_cache(_table(raw, "cache", "cache")),
        serve=_serve(_table(raw, "serve", "serve")),
    )


def _serve(raw: Mapping[str, Any]) -> ServeConfig:
    import re

    host = raw.get("host", "127.0.0.1")
    if not isinstance(host, str) or not host:
        raise _fail("serve.host", f"must be an address such as 127.0.0.1, got {host!r}")
    port = raw.get("port", 8787)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise _fail("serve.port", f"must be a port number 0-65535, got {port!r}")
    members = _table(raw, "members", "serve.members")
    for name, digest in members.items():
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise _fail(f"serve.members.{name}", "must be the sha256 of a key; add members with "
                        "`routecli serve add-key NAME`, which prints the key once")
    interval = raw.get("commit_interval_ms", 500.0)
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not 0 <= interval <= 10_000:
        raise _fail("serve.commit_interval_ms", f"must be 0-10000 milliseconds (0: commit each row at once), "
                                                f"got {interval!r}")
    return ServeConfig(host, port, _positive(raw.get("max_body_bytes", 10_000_000), "serve.max_body_bytes", int),
                       float(interval), dict(members))
