"""Routing: classify a request (pure), then choose a concrete model for its tier.

`CLASSIFIERS` is a registry (RouteLLM's ROUTER_CLS idea): name -> function that scores a
request. Everything here is pure: no I/O, no clock, safe to call millions of times.
"""

from __future__ import annotations

from typing import Callable

from routecli.config import Config
from routecli.domain import ModelRef, Request, Verdict
from routecli.errors import UsageError
from routecli.routing import learned, rules

Scorer = Callable[[Request], "tuple[float, tuple[str, ...], dict]"]

CLASSIFIERS: dict[str, tuple[Scorer, str]] = {
    rules.NAME: (rules.score_request, rules.VERSION),
    learned.NAME: (learned.score_request, learned.VERSION),
}


def classify(request: Request, config: Config) -> Verdict:
    """Score the request and map the score to a tier; --tier/--model win, marked phase=explicit."""
    scorer, version = CLASSIFIERS[config.classifier]
    score, reasons, signals = scorer(request)
    if request.model:
        ref = ModelRef.parse(request.model)
        tier = next((t for t, r in config.all_models() if r == ref), "explicit")
        return Verdict(score, tier, (f"forced by --model {ref}",), "explicit", config.classifier, version, signals)
    if request.tier:
        if request.tier not in config.tiers:
            known = ", ".join(config.tier_order)
            raise UsageError(f"Unknown tier {request.tier!r}; use one of: {known}")
        reason = f"forced by --tier {request.tier}"
        return Verdict(score, request.tier, (reason,), "explicit", config.classifier, version, signals)
    tier = rules.tier_for(score, config.tier_order, dict(config.thresholds))
    reasons = reasons + (_threshold_reason(score, tier, config),)
    tier, raised = apply_min_tier(tier, request, signals, config)
    return Verdict(score, tier, reasons + raised, config.classifier, config.classifier, version, signals)


def apply_min_tier(tier: str, request: Request, signals: dict, config: Config) -> tuple[str, tuple[str, ...]]:
    """Per-agent and per-domain floors from [policies]; the highest floor wins."""
    floors = []
    if request.agent and request.agent in config.agent_min_tier:
        floors.append((config.agent_min_tier[request.agent], f"agent {request.agent!r}"))
    domain = signals.get("domain")
    if domain and domain in config.domain_min_tier:
        floors.append((config.domain_min_tier[domain], f"{domain} domain"))
    order = config.tier_order
    reasons = []
    for floor, why in floors:
        if floor in order and tier in order and order.index(floor) > order.index(tier):
            reasons.append(f"{why} needs at least {floor} (was {tier})")
            tier = floor
    return tier, tuple(reasons)


def _threshold_reason(score: float, tier: str, config: Config) -> str:
    if tier == config.tier_order[0]:
        lowest = config.thresholds.get(config.tier_order[1]) if len(config.tier_order) > 1 else None
        return f"score {score:.2f}" + (f" < {lowest:.2f}" if lowest is not None else "")
    return f"score {score:.2f} >= {tier} threshold {config.thresholds[tier]:.2f}"
