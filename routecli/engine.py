"""The one place that composes a request's path: classify, choose, call, price, record.

Commands stay thin: they build a `Request`, call `Engine.ask`, and render the `Outcome`.
Every attempt, failed ones included, leaves exactly one row in the ledger.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable

from routecli.analytics.ab import arm as ab_arm
from routecli.config import Config
from routecli.domain import Decision, ModelRef, Reply, Request, Usage
from routecli.errors import MissingKeyError, ProviderError, RoutecliError, UsageError, redact
from routecli.keys import KeyRing
from routecli.pricing import price, to_micros
from routecli.routing import classify
from routecli.routing.choose import choose

if TYPE_CHECKING:
    import httpx

    from routecli.analytics.ab import ABTest
    from routecli.pricing import Price
    from routecli.store import Store


@dataclass
class Outcome:
    attempt_id: str
    decision: Decision
    status: str  # ok | dry-run | error
    reply: Reply | None = None
    cost: Decimal | None = None
    baseline_cost: Decimal | None = None
    price_source: str | None = None
    warnings: list[str] = field(default_factory=list)
    confidence: float | None = None  # assess(): how sure we are the answer is good
    assessment_reasons: tuple[str, ...] = ()
    cache_kind: str | None = None  # exact | similar: answered from the cache
    saved_cost: Decimal | None = None  # what a cache hit saved
    history: list[str] = field(default_factory=list)  # fallbacks, escalations, breaker changes


MAX_LABEL = 100  # agent and tag names are indexed for stats; PostgreSQL caps an index entry at ~2.7 kB
MAX_TAGS = 16


def validate(request: Request, config: Config) -> None:
    """Refuse what no model should be sent: nothing to answer, or far too much."""
    if not request.messages or not request.last_user_text.strip() and not request.has_images:
        raise UsageError("Empty prompt: pass the text as an argument, or pipe it in with `-`")
    size = len(request.all_text())
    if size > config.max_prompt_chars:
        raise UsageError(
            f"Prompt is {size:,} characters, over the limit of {config.max_prompt_chars:,}; "
            "shorten it or raise it with `routecli config set limits.max_prompt_chars N`"
        )
    if request.agent is not None and len(request.agent) > MAX_LABEL:
        raise UsageError(f"--agent is {len(request.agent):,} characters; keep it under {MAX_LABEL}")
    if len(request.tags) > MAX_TAGS or any(len(tag) > MAX_LABEL for tag in request.tags):
        raise UsageError(f"Tags: at most {MAX_TAGS}, each under {MAX_LABEL} characters (they are indexed for stats)")
    if request.max_tokens is not None and request.max_tokens <= 0:
        raise UsageError("--max-tokens must be a whole number above 0")
    if request.temperature is not None and not 0.0 <= request.temperature <= 2.0:
        raise UsageError("--temperature must be between 0 and 2")


class Engine:
    def __init__(
        self,
        config: Config,
        store: Store | None,  # None: decisions only (route, calibrate), nothing recorded
        keys: KeyRing,
        *,
        client_factory: Callable[..., httpx.Client] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.keys = keys
        self._client_factory = client_factory
        self._clients: dict[str, httpx.Client] = {}
        self.router: str | None = None  # --router: a classifier[:threshold] for requests that name none
        # A/B hook (analytics/ab.py): the running A/B tests decide() assigns requests to, read once;
        # a store-less engine deciding for a caller that records (batch's runner) is handed them
        self.ab: tuple[ABTest, ...] = ()
        if store is not None:
            from routecli.analytics.ab_store import running_tests

            self.ab = running_tests(store)

    def decide(self, request: Request, *, dry_run: bool = False) -> Decision:
        validate(request, self.config)
        router = request.router or self.router
        if router:  # a router named for this request (or command) wins over any A/B test
            from routecli.analytics.ab import router_strategy

            strategy = router_strategy(router)
            verdict = classify(request, strategy.apply(self.config))
            verdict = replace(verdict, reasons=verdict.reasons + (f"router {strategy.text}",))
        else:
            arm = ab_arm(request, self.ab, self.config)  # A/B hook: None, or ((test, variant), config to classify with)
            verdict = classify(request, arm[1] if arm else self.config)
            if arm:
                verdict = replace(verdict, ab=arm[0])
        try:
            return choose(verdict, request, self.config, self.keys.has, self._window_of)
        except MissingKeyError as exc:
            if not dry_run:
                raise
            # a dry run shows the routing even before any key is set up
            decision = choose(verdict, request, self.config, lambda _provider: True, self._window_of)
            note = f"dry run: {exc}"
            return replace(decision, notes=decision.notes + (note,))

    def ask(
        self,
        request: Request,
        *,
        source: str = "ask",
        run_id: str | None = None,
        dry_run: bool = False,
        stream: bool = True,
        on_text: Callable[[str], None] | None = None,
        on_restart: Callable[[str], None] | None = None,
        use_cache: bool = True,
        run_budget: Decimal | None = None,
    ) -> Outcome:
        """Answer one request through the guards (breaker, budget, cache, fallback, escalation).
        on_restart(note): the text streamed so far is being replaced by another attempt's."""
        from routecli.flow import Flow
        from routecli.guard.gate import Gate
        from routecli.store import new_id

        decision = self.decide(request, dry_run=dry_run)
        attempt_id = new_id()
        if not dry_run:
            decision = self.judge(request, decision, attempt_id)
        if dry_run:
            row = base_row(request, decision, self.config, source, run_id, attempt_id)
            return self._finish(row, Outcome(row["id"], decision, "dry-run"))
        refuse_tools(request)
        if self.store is None:
            raise RuntimeError("Engine without a store cannot record; pass one to call models")
        gate = Gate(self.config, self.store, run_id=run_id, run_budget=run_budget, use_cache=use_cache)
        flow = Flow(self, gate, stream=stream, on_text=on_text, on_restart=on_restart)
        return flow.run(request, decision, attempt_id, source=source, run_id=run_id)

    def judge(self, request: Request, decision: Decision, request_id: str) -> Decision:
        """Phase 2: let the configured judge re-decide an ambiguous score; on any failure keep phase 1."""
        from routecli.routing import apply_min_tier
        from routecli.routing.judge import in_band

        settings, verdict = self.config.judge, decision.verdict
        if not settings.enabled or settings.model is None or self.store is None:
            return decision
        if verdict.phase == "explicit" or not in_band(verdict.score, settings.band):
            return decision
        try:
            tier, why, cached = self._judged_tier(request, decision, request_id)
        except RoutecliError as exc:
            kind = getattr(exc, "kind", "unusable answer")
            note = f"judge fallback ({kind}): {exc}; the phase-1 decision stands"
            return replace(decision, notes=decision.notes + (note,))
        reasons = verdict.reasons + (f"judge{' (cached)' if cached else ''}: {tier}" + (f", {why}" if why else ""),)
        tier, raised = apply_min_tier(tier, request, dict(verdict.signals), self.config)
        judged = replace(verdict, tier=tier, phase="judge", reasons=reasons + raised)
        return choose(judged, request, self.config, self.keys.has, self._window_of)

    def _judged_tier(self, request: Request, decision: Decision, request_id: str) -> tuple[str, str, bool]:
        """(tier, reason, from cache); the judge's own call is a ledger row linked by request_id."""
        from routecli.routing.judge import cache_key, judge_request, parse_verdict
        from routecli.store import judge_cache

        ref = self.config.judge.model
        key = cache_key(request)
        cached = judge_cache.lookup(self.store, key, str(ref))
        if cached:
            return cached[0], cached[1], True
        asked = judge_request(request, self.config.tier_order)
        judging = Decision(decision.verdict, ref, "judge")
        row = base_row(asked, judging, self.config, "judge", None)
        row["request_id"] = request_id
        started = time.perf_counter()
        try:
            reply = self._call(judging, asked, False, lambda _text: None, timeout=self.config.judge.timeout)
        except ProviderError as exc:
            self._record_failure(row, judging, exc.kind, str(exc), started, "")
            raise
        self._finish(row, priced(row, judging, reply, self.config))
        tier, why = parse_verdict(reply.text, self.config.tier_order)
        judge_cache.save(self.store, key, str(ref), tier, why, row["id"])
        return tier, why, False

    def _window_of(self, ref: ModelRef) -> int | None:
        from routecli.pricing import context_window

        return context_window(ref, self.config)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def _call(
        self, decision: Decision, request: Request, stream: bool, on_text: Callable[[str], None],
        *, timeout: float | None = None,
    ) -> Reply:
        from routecli.providers import get_provider, make_client

        cfg = self.config.provider(decision.model.provider)
        api_key = self.keys.require(cfg.name)
        slot = cfg.name
        if timeout is not None:  # the judge's own, shorter limit gets its own client
            cfg = replace(cfg, read_timeout=timeout, connect_timeout=min(cfg.connect_timeout, timeout))
            slot = f"{cfg.name}@{timeout}"
        if slot not in self._clients:
            factory = self._client_factory or make_client
            self._clients[slot] = factory(cfg)
        provider = get_provider(
            cfg, api_key=api_key, client=self._clients[slot], default_max_tokens=self.config.default_max_tokens
        )
        return provider.complete(request, decision.model.model, stream=stream, on_text=on_text)

    def _record_failure(
        self, row: dict[str, Any], decision: Decision, kind: str, message: str, started: float, partial: str
    ) -> None:
        latency_ms = (time.perf_counter() - started) * 1000
        mark_failed(row, kind, redact(message, self.keys.secrets()), latency_ms, partial, self.config)
        self._finish(row, Outcome(row["id"], decision, "error"))

    def _finish(self, row: dict[str, Any], outcome: Outcome) -> Outcome:
        from routecli.store import Attempt

        if self.store is None:
            raise RuntimeError("Engine without a store cannot record; pass one to call models")
        self.store.record(Attempt(**row))
        return outcome


def refuse_tools(request: Request) -> None:
    if request.tools or any(m.role == "tool" for m in request.messages):
        raise UsageError(
            "This request has tools or tool results: routecli can route it (`--dry-run`) "
            "but does not forward tool definitions to models yet; remove them to send it"
        )


PriceOf = Callable[[Usage, ModelRef], "Price"]


def priced(row: dict[str, Any], decision: Decision, reply: Reply, config: Config,
           price_of: PriceOf | None = None) -> Outcome:
    """The outcome of a reply, its cost and baseline cost; fills the ledger row to match."""
    outcome = price_reply(row["id"], decision, reply, config, price_of)
    fill_ok(row, outcome, config)
    return outcome


def price_reply(attempt_id: str, decision: Decision, reply: Reply, config: Config,
                price_of: PriceOf | None = None) -> Outcome:
    """The outcome of a reply with its cost and baseline cost (what an answer needs; the row can wait)."""
    price_of = price_of or (lambda usage, ref: price(usage, ref, config))
    cost = price_of(reply.usage, decision.model) if reply.usage else None
    baseline = price_of(reply.usage, config.baseline) if reply.usage and config.baseline else None
    outcome = Outcome(attempt_id, decision, "ok", reply)
    outcome.warnings += price_warnings(decision, reply, cost, config)
    outcome.cost = cost.cost if cost else None
    outcome.price_source = cost.source if cost else None
    outcome.baseline_cost = baseline.cost if baseline else None
    return outcome


def fill_ok(row: dict[str, Any], outcome: Outcome, config: Config) -> None:
    """Fill a ledger row for an answered call from its outcome."""
    reply = outcome.reply
    assert reply is not None
    usage = reply.usage
    row.update(
        status="ok",
        answer=reply.text if config.save_text else None,
        input_tokens=usage.input_tokens if usage else None,
        output_tokens=usage.output_tokens if usage else None,
        cached_tokens=usage.cached_tokens if usage else None,
        reasoning_tokens=usage.reasoning_tokens if usage else None,
        ttft_ms=reply.ttft_ms,
        latency_ms=reply.latency_ms,
        cost_micros=to_micros(outcome.cost),
        baseline_cost_micros=to_micros(outcome.baseline_cost),
        price_source=outcome.price_source,
    )


def mark_failed(row: dict[str, Any], kind: str, message: str, latency_ms: float, partial: str, config: Config) -> None:
    """Fill a ledger row for a failed call; `message` must already be redacted."""
    row.update(
        status="error",
        error_kind=kind,
        error_message=message,
        latency_ms=latency_ms,
        answer=(partial or None) if config.save_text else None,
    )


def price_warnings(decision: Decision, reply: Reply, cost: Price | None, config: Config) -> list[str]:
    if reply.usage is None:
        return [f"{decision.model.provider} reported no token usage: cost recorded as unknown"]
    if cost is None or cost.cost is None:
        return [
            f"No price known for {decision.model}: cost recorded as unknown; set one with "
            f"`routecli config set prices.{decision.model}.input_mtok N` (and output_mtok)"
        ]
    return []


def base_row(
    request: Request, decision: Decision, config: Config, source: str, run_id: str | None,
    attempt_id: str | None = None,
) -> dict[str, Any]:
    from routecli.store import new_id, sha256_text

    verdict = decision.verdict
    prompt = request.last_user_text
    attempt_id = attempt_id or new_id()
    return {
        "id": attempt_id,
        "request_id": attempt_id,
        "source": source,
        "run_id": run_id,
        "prompt_hash": sha256_text(prompt),
        "prompt": prompt if config.save_text else None,
        "system_hash": sha256_text(request.system) if request.system else None,
        "agent": request.agent,
        "tags": list(request.tags),
        "signals": dict(verdict.signals),
        "classifier": verdict.classifier,
        "classifier_version": verdict.version,
        "score": verdict.score,
        "tier": decision.tier,
        "provider": decision.model.provider,
        "model": decision.model.model,
        "reasons": list(verdict.reasons),
        "phase": verdict.phase,
        "notes": list(decision.notes),
        "status": "dry-run",
        "baseline_model": str(config.baseline) if config.baseline else None,
        "ab_test": verdict.ab[0] if verdict.ab else None,  # A/B hook: the test and variant that routed it
        "ab_variant": verdict.ab[1] if verdict.ab else None,
    }
