"""From a verdict's tier to one concrete model: the first usable one, with notes on what was skipped.

Pure: whether a provider has a key is asked through the `has_key` callback.
"""

from __future__ import annotations

from typing import Callable

from routecli.config import Config
from routecli.domain import Decision, ModelRef, Request, Verdict
from routecli.errors import MissingKeyError, UsageError


def choose(verdict: Verdict, request: Request, config: Config, has_key: Callable[[str], bool]) -> Decision:
    if request.model:
        return _forced_model(verdict, request, config, has_key)
    notes: list[str] = []
    no_key: list[str] = []
    for tier in _candidate_tiers(verdict, request, config):
        for ref in config.tiers[tier]:
            config.provider(ref.provider)  # an unknown provider is a config error, not a skip
            if request.has_images and not config.caps(ref).vision:
                notes.append(f"skipped {ref}: cannot read images")
                continue
            if not has_key(ref.provider):
                if ref.provider not in no_key:
                    no_key.append(ref.provider)
                notes.append(f"skipped {ref}: no key for {ref.provider}")
                continue
            if tier != verdict.tier:
                notes.append(f"tier {verdict.tier} had no usable model; used {tier}")
            return Decision(verdict, ref, tier, tuple(notes))
    raise _nothing_usable(request, config, verdict, no_key)


def _candidate_tiers(verdict: Verdict, request: Request, config: Config) -> list[str]:
    """The verdict's tier, then stronger tiers, then weaker ones (a forced tier stays alone)."""
    if request.tier or verdict.tier not in config.tier_order:
        return [verdict.tier]
    at = config.tier_order.index(verdict.tier)
    return list(config.tier_order[at:]) + list(reversed(config.tier_order[:at]))


def _forced_model(verdict: Verdict, request: Request, config: Config, has_key: Callable[[str], bool]) -> Decision:
    ref = ModelRef.parse(request.model or "")
    provider = config.provider(ref.provider)
    if not has_key(ref.provider):
        from routecli.keys import missing_key_message

        raise MissingKeyError(missing_key_message(provider))
    if request.has_images and not config.caps(ref).vision:
        raise UsageError(
            f"{ref} is not marked as vision-capable; pick another model or set "
            f"`routecli config set models.{ref}.vision true`"
        )
    return Decision(verdict, ref, verdict.tier)


def _nothing_usable(request: Request, config: Config, verdict: Verdict, no_key: list[str]) -> Exception:
    if no_key:
        first = config.provider(no_key[0])
        others = [config.provider(n).api_key_env for n in no_key[1:3]]
        alternatives = f" (or {', '.join(e for e in others if e)})" if any(others) else ""
        where = f"tier {verdict.tier}" if request.tier else "any tier"
        return MissingKeyError(
            f"No API key for a model in {where}: set {first.api_key_env}{alternatives} "
            f"or run `routecli keys set {first.name}`"
        )
    return UsageError(
        "No vision-capable model in the configured tiers; mark one with "
        "`routecli config set models.PROVIDER:MODEL.vision true` or add one to a tier"
    )
