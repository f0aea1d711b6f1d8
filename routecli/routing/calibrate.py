"""Thresholds from traffic: pick per-tier score thresholds so each tier gets a chosen share.

RouteLLM calibrates on its own Arena data; here the scores come from the user's own prompts
(a file, or the ledger), so "30% strong" means 30% of *their* traffic. Pure functions.
"""

from __future__ import annotations

from typing import Sequence

from routecli.errors import UsageError
from routecli.routing.rules import tier_for

MIN_PROMPTS = 10
_STEP = 1e-4


def shares_from_strong(tier_order: Sequence[str], strong_share: float) -> dict[str, float]:
    """`--strong-share x`: x to the strongest tier, the rest split evenly over the others."""
    if not 0.0 <= strong_share <= 1.0:
        raise UsageError(f"--strong-share must be between 0 and 1, got {strong_share}")
    if len(tier_order) < 2:
        raise UsageError("Calibration needs at least two tiers in routing.tier_order")
    rest = (1.0 - strong_share) / (len(tier_order) - 1)
    return {tier: (strong_share if tier == tier_order[-1] else rest) for tier in tier_order}


def parse_shares(text: str, tier_order: Sequence[str]) -> dict[str, float]:
    """`local=0.4,cheap=0.3,...` over exactly the tiers in tier_order, summing to 1."""
    shares: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        tier, sep, value = item.partition("=")
        try:
            shares[tier.strip()] = float(value) if sep else float("nan")
        except ValueError:
            shares[tier.strip()] = float("nan")
    example = ",".join(f"{t}=..." for t in tier_order)
    if set(shares) != set(tier_order) or any(not 0.0 <= v <= 1.0 for v in shares.values()):
        raise UsageError(f"--shares needs a share from 0 to 1 for every tier in tier_order: {example}")
    if abs(sum(shares.values()) - 1.0) > 0.01:
        raise UsageError(f"--shares must add up to 1 (they add up to {sum(shares.values()):.2f})")
    return shares


def thresholds_for_shares(scores: Sequence[float], tier_order: Sequence[str], shares: dict[str, float]) -> dict[str, float]:
    """The lowest score for each tier after the first, so that tiers get `shares` of `scores`."""
    if len(scores) < MIN_PROMPTS:
        raise UsageError(f"Calibration needs at least {MIN_PROMPTS} prompts, got {len(scores)}; give a bigger file")
    ordered = sorted(scores)
    n = len(ordered)
    cuts: list[float] = []
    below = 0.0
    for index in range(1, len(tier_order)):
        below += shares[tier_order[index - 1]]
        rank = round(below * n)
        if rank <= 0:
            cuts.append(ordered[0])
        elif rank >= n:
            cuts.append(1.0)
        else:
            cuts.append((ordered[rank - 1] + ordered[rank]) / 2)  # between two scores, never on one
    # Thresholds must rise strictly within (0, 1]: make room downwards first (a tier asked to
    # get everything keeps everything), then upwards from the floor.
    for index in range(len(cuts) - 2, -1, -1):
        cuts[index] = min(cuts[index], cuts[index + 1] - _STEP)
    for index, cut in enumerate(cuts):
        cuts[index] = max(cut, _STEP if index == 0 else cuts[index - 1] + _STEP)
    return {tier: round(cut, 4) for tier, cut in zip(tier_order[1:], cuts)}


def achieved_shares(scores: Sequence[float], tier_order: Sequence[str], thresholds: dict[str, float]) -> dict[str, float]:
    counts = dict.fromkeys(tier_order, 0)
    for score in scores:
        counts[tier_for(score, tuple(tier_order), thresholds)] += 1
    total = max(1, len(scores))
    return {tier: count / total for tier, count in counts.items()}
