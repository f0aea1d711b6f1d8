"""From a verdict's tier to one concrete model: the first usable one, with notes on what was skipped.

Pure: whether a provider has a key, and a model's context window, are asked through callbacks.
A model is usable when its provider has a key, it can read the request's images, take its
tools, and its context window fits the prompt.
"""

from __future__ import annotations

from typing import Callable

from routecli.config import Config
from routecli.domain import Decision, ModelRef, Request, Verdict
from routecli.errors import MissingKeyError, UsageError

WindowOf = Callable[[ModelRef], "int | None"]
# Below this many estimated tokens every current model fits; windows are not even looked up.
SMALL_PROMPT_TOKENS = 8_000


def choose(
    verdict: Verdict,
    request: Request,
    config: Config,
    has_key: Callable[[str], bool],
    window_of: WindowOf | None = None,
) -> Decision:
    if request.model:
        return _forced_model(verdict, request, config, has_key)
    notes: list[str] = []
    no_key: list[str] = []
    tokens = _needed_tokens(verdict, request)
    candidates = _candidate_tiers(verdict, request, config)
    # an uninstalled local tier is as if not configured: the next tier is the one that was wanted
    wanted = next((t for t in candidates if not _absent_local(config.tiers[t], config, has_key)), verdict.tier)
    for tier in candidates:
        for ref in config.tiers[tier]:
            config.provider(ref.provider)  # an unknown provider is a config error, not a skip
            unfit = _unfit(ref, request, config, tokens, window_of)
            if unfit:
                notes.append(f"skipped {ref}: {unfit}")
                continue
            if not has_key(ref.provider):
                if ref.provider not in no_key:
                    no_key.append(ref.provider)
                if not _in_process(config, ref):  # an uninstalled local model is as if not configured
                    notes.append(f"skipped {ref}: no key for {ref.provider}")
                continue
            if tier != wanted:
                notes.append(f"tier {wanted} had no usable model; used {tier}")
            return Decision(verdict, ref, tier, tuple(notes))
    raise _nothing_usable(request, verdict, config, no_key, notes)


def _needed_tokens(verdict: Verdict, request: Request) -> int:
    estimate = verdict.signals.get("est_tokens")
    prompt = int(estimate) if isinstance(estimate, (int, float)) else len(request.all_text()) // 4
    return prompt + (request.max_tokens or 0)


def _unfit(ref: ModelRef, request: Request, config: Config, tokens: int, window_of: WindowOf | None) -> str:
    caps = config.caps(ref)
    if request.has_images and not caps.vision:
        return "cannot read images"
    if request.tools and not caps.tools:
        return "cannot take tools"
    if tokens > SMALL_PROMPT_TOKENS:
        window = caps.context_window or (window_of(ref) if window_of else None)
        if window is not None and tokens > window:
            return f"~{tokens:,} tokens do not fit its {window:,}-token window"
    return ""


def _candidate_tiers(verdict: Verdict, request: Request, config: Config) -> list[str]:
    """The verdict's tier, then stronger tiers, then weaker ones (a forced tier stays alone)."""
    if request.tier or verdict.tier not in config.tier_order:
        return [verdict.tier]
    at = config.tier_order.index(verdict.tier)
    return list(config.tier_order[at:]) + list(reversed(config.tier_order[:at]))


def usable_models(tier: str, request: Request, config: Config, has_key: Callable[[str], bool],
                  window_of: WindowOf | None, tokens: int) -> list[ModelRef]:
    """The tier's models that can take this request, in the tier's order of preference."""
    return [ref for ref in config.tiers.get(tier, ())
            if not _unfit(ref, request, config, tokens, window_of) and has_key(ref.provider)]


def fallback_chain(decision: Decision, request: Request, config: Config, has_key: Callable[[str], bool],
                   window_of: WindowOf | None = None) -> list[tuple[ModelRef, str]]:
    """What to try, in order, when the chosen model fails: the rest of its tier, then the tiers
    above it (`fallbacks.climb`), then `fallbacks.last_resort`. A forced model has none; a
    forced tier stays in its tier."""
    settings = config.guards.fallbacks
    if not settings.enabled or request.model:
        return []
    tiers = [decision.tier]
    if settings.climb and not request.tier and decision.tier in config.tier_order:
        tiers += config.tier_order[config.tier_order.index(decision.tier) + 1:]
    if settings.last_resort and settings.last_resort not in tiers and not request.tier:
        tiers.append(settings.last_resort)
    tokens = _needed_tokens(decision.verdict, request)
    chain: list[tuple[ModelRef, str]] = []
    for tier in tiers:
        for ref in usable_models(tier, request, config, has_key, window_of, tokens):
            if ref != decision.model and all(ref != seen for seen, _ in chain):
                chain.append((ref, tier))
    return chain


def tier_above(decision: Decision, request: Request, config: Config, has_key: Callable[[str], bool],
               window_of: WindowOf | None = None) -> tuple[ModelRef, str] | None:
    """The first usable model one tier (or more, if a tier has none) above the decision's:
    where a weak answer escalates. None for a forced model or tier, or at the top."""
    if request.model or request.tier or decision.tier not in config.tier_order:
        return None
    tokens = _needed_tokens(decision.verdict, request)
    for tier in config.tier_order[config.tier_order.index(decision.tier) + 1:]:
        found = usable_models(tier, request, config, has_key, window_of, tokens)
        if found:
            return found[0], tier
    return None


def tiers_below(decision: Decision, request: Request, config: Config, has_key: Callable[[str], bool],
                window_of: WindowOf | None = None) -> list[tuple[ModelRef, str]]:
    """Cheaper choices, nearest first: the rest of the decision's tier, then each tier below it."""
    if request.model or decision.tier not in config.tier_order:
        return []
    at = config.tier_order.index(decision.tier)
    tiers = [decision.tier] + ([] if request.tier else list(reversed(config.tier_order[:at])))
    tokens = _needed_tokens(decision.verdict, request)
    return [(ref, tier) for tier in tiers for ref in usable_models(tier, request, config, has_key, window_of, tokens)
            if ref != decision.model]


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


def _in_process(config: Config, ref: ModelRef) -> bool:
    """A llamacpp model: it needs the `local` extra installed, never a key."""
    return config.provider(ref.provider).kind == "llamacpp"


def _absent_local(refs: tuple[ModelRef, ...], config: Config, has_key: Callable[[str], bool]) -> bool:
    return bool(refs) and all(_in_process(config, ref) and not has_key(ref.provider) for ref in refs)


def _nothing_usable(
    request: Request, verdict: Verdict, config: Config, no_key: list[str], notes: list[str]
) -> Exception:
    from routecli.keys import LOCAL_INSTALL

    local = [name for name in no_key if config.provider(name).kind == "llamacpp"]
    no_key = [name for name in no_key if name not in local]
    if local and not no_key:
        return MissingKeyError(f"The local model is not installed: {LOCAL_INSTALL}")
    if no_key:
        first = config.provider(no_key[0])
        others = [config.provider(n).api_key_env for n in no_key[1:3]]
        alternatives = f" (or {', '.join(e for e in others if e)})" if any(others) else ""
        where = f"tier {verdict.tier}" if request.tier else "any tier"
        return MissingKeyError(
            f"No API key for a model in {where}: set {first.api_key_env}{alternatives} "
            f"or run `routecli keys set {first.name}`" + (f"; or answer locally: {LOCAL_INSTALL}" if local else "")
        )
    reason = notes[-1].split(": ", 1)[-1] if notes else "no model configured"
    return UsageError(
        f"No configured model can take this request (last: {reason}); add a capable model to a tier "
        "or mark one with `routecli config set models.PROVIDER:MODEL.vision true` (or .tools, .context_window)"
    )
