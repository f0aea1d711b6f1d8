"""One request's journey through the guards: breaker, budget, cache, call, fallback, escalation.

Each attempt is one ledger row; all rows of a request share its request_id, and each row
after the first names the one it follows (`parent_id`) and why (`step`). `Policy` holds the
choices both drivers share (which model next, whether to escalate, what a cache hit or a
refusal records); `Flow` drives them synchronously for `ask`, `batch.runner` asynchronously.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable

from routecli.domain import Decision, ModelRef, Reply, Request
# at the top, not in the methods: an import inside a function costs ~1 µs a call, on every request of serve
from routecli.engine import base_row
from routecli.errors import BudgetError, ProviderError
from routecli.routing.choose import tier_above

if TYPE_CHECKING:
    from routecli.config import Config
    from routecli.engine import Engine, Outcome
    from routecli.guard.gate import Gate
    from routecli.keys import KeyRing
    from routecli.routing.assess import Asked
    from routecli.store.budgets import Hold

# finish reasons (as each vendor spells them) that mean the model declined to answer
REFUSED = frozenset({"content_filter", "refusal", "SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION"})


@dataclass
class Journey:
    request: Request
    request_id: str  # "": drawn by Policy.claim() when the first row needs it (serve: while the model answers)
    source: str
    run_id: str | None
    chain_source: Any  # the fallbacks still to try, or a function that works them out on first need
    attempts: int = 0  # models tried
    escalations: int = 0
    parent: str | None = None  # the row the next attempt follows
    step: str = "first"
    history: list[str] = field(default_factory=list)  # what happened, for the footer and --json
    weak: Any = None  # the answer an escalation would replace, kept in case it fails
    caller: str | None = None  # who asked, through `routecli serve`
    resorted: bool = False  # the last-resort tier was tried beyond max_attempts
    hold: Any = None  # serve, batch: the budget hold of the attempt in flight, until its row's commit frees it


    @property
    def chain(self) -> list[tuple[ModelRef, str]]:
        # worked out only when a call fails: the happy path of a batch line never pays for it
        if callable(self.chain_source):
            self.chain_source = self.chain_source()
        return self.chain_source

    @chain.setter
    def chain(self, value: list[tuple[ModelRef, str]]) -> None:
        self.chain_source = value


class BudgetRefused(Exception):
    def __init__(self, row: dict[str, Any], message: str) -> None:
        super().__init__(message)
        self.row, self.message = row, message


def mark_skipped(row: dict[str, Any], kind: str, message: str) -> None:
    """A row for a model not called at all (open breaker, budget): recorded all the same."""
    row.update(status="skipped", error_kind=kind, error_message=message)


@dataclass(frozen=True, slots=True)
class Slot:
    """A ledger row claimed before its call: its id and place in the journey (its row may be built later)."""

    id: str
    step: str
    parent: str | None


def fill_assessment(row: dict[str, Any], outcome: Outcome) -> None:
    if outcome.confidence is None:
        return
    row["confidence"] = outcome.confidence
    if outcome.assessment_reasons:  # why the answer looked weak, kept with the row
        reasons = ", ".join(outcome.assessment_reasons)
        row["notes"] = list(row["notes"]) + [f"assessed {outcome.confidence:.2f}: {reasons}"]


def refusal(reply: Reply, decision: Decision) -> None:
    """A reply that is a refusal is a failure a fallback may answer."""
    if reply.finish_reason in REFUSED:
        raise ProviderError(
            f"{decision.model} declined to answer (finish reason {reply.finish_reason}): rephrase the prompt "
            "or pick another model with --model", kind="refusal", provider=decision.model.provider,
            model=decision.model.model)


class Policy:
    def __init__(self, config: Config, keys: KeyRing, gate: Gate, window_of: Callable[[ModelRef], int | None]) -> None:
        self.config, self.keys, self.gate, self.window_of = config, keys, gate, window_of

    def claim(self, journey: Journey) -> Slot:
        """The next attempt's row id and place in the journey; its row can be built later."""
        first = journey.parent is None and journey.attempts <= 1
        if first and journey.request_id:
            row_id = journey.request_id  # the first attempt's id is the request's id
        else:
            from routecli.store import new_id

            row_id = new_id()
            if first:  # the request's id, drawn only now
                journey.request_id = row_id
        slot = Slot(row_id, journey.step, journey.parent)
        journey.parent = row_id
        return slot

    def row(self, journey: Journey, decision: Decision, slot: Slot | None = None) -> dict[str, Any]:
        """The ledger row of an attempt (the next one, unless its slot was claimed earlier)."""
        slot = slot or self.claim(journey)
        row = base_row(journey.request, decision, self.config, journey.source, journey.run_id, slot.id)
        row.update(request_id=journey.request_id, step=slot.step, parent_id=slot.parent, caller=journey.caller)
        return row

    def admit(self, journey: Journey, ref: ModelRef) -> tuple[bool, str]:
        """Ask the breaker; an open one is honoured only when another model can take the request,
        since skipping the last candidate would only turn a likely failure into a certain one."""
        admitted, note = self.gate.admit(ref)
        if admitted or journey.chain:
            return admitted, note
        return True, f"{note.removeprefix('skipped ')}; no other model can take it, so it is called anyway"

    # ------------------------------------------------------------ fallbacks

    def next_model(self, journey: Journey, decision: Decision, row_id: str, kind: str) -> Decision | None:
        """The fallback after `decision.model` failed with `kind`, or None."""
        settings = self.config.guards.fallbacks
        if kind == "context_window":
            journey.chain = self._larger_windows(journey.chain, decision.model)
        if journey.attempts >= settings.max_attempts:  # out of tries: only the last resort is left
            journey.chain = [(ref, tier) for ref, tier in journey.chain if tier == settings.last_resort][:1]
            journey.chain = [] if journey.resorted else journey.chain
            journey.resorted = True
        if (kind not in settings.on and kind != "open_circuit") or not journey.chain or journey.step == "escalation":
            return None
        ref, tier = journey.chain.pop(0)
        journey.parent, journey.step = row_id, "fallback"
        journey.history.append(f"{decision.model} failed ({kind}); fell back to {ref}")
        return Decision(decision.verdict, ref, tier, decision.notes + (f"fallback after {decision.model}: {kind}",))

    def _larger_windows(self, chain: list[tuple[ModelRef, str]], failed: ModelRef) -> list[tuple[ModelRef, str]]:
        known = self.window_of(failed)
        if known is None:
            return chain
        return [(ref, tier) for ref, tier in chain if (self.window_of(ref) or known + 1) > known]

    # ------------------------------------------------------------ budgets

    def reserve(self, journey: Journey, decision: Decision) -> tuple[Decision, Hold | None]:
        """Hold the call's worst case; downgrade or refuse (BudgetRefused) when it does not fit."""
        reservation = self.gate.reserve(journey.request, decision.model)
        if reservation is None or reservation.hold is not None:
            return _warned(decision, reservation), reservation.hold if reservation else None
        refused = reservation.refused
        assert refused is not None
        from routecli.guard.budget import share_text

        why = f"{refused.scope.label}: {share_text(refused.used, refused.scope.limit_micros)} spent or held"
        if self.config.guards.budgets.on_exceed == "downgrade":
            found = self._cheaper(journey, decision, why)
            if found is not None:
                return found
        message = (f"Budget: {why}, and a call to {decision.model} could pass it; raise the limit "
                   "(`routecli config set budgets.daily N`, or --budget), wait for the next period, or use --tier "
                   "with a cheaper tier")
        raise BudgetRefused(self.row(journey, decision), message)

    def _cheaper(self, journey: Journey, decision: Decision, why: str) -> tuple[Decision, Hold | None] | None:
        from routecli.routing.choose import tiers_below

        for ref, tier in tiers_below(decision, journey.request, self.config, self.keys.has, self.window_of):
            reservation = self.gate.reserve(journey.request, ref)
            if reservation is None or reservation.hold is not None:
                note = f"budget: {why}; downgraded from {decision.model} ({decision.tier}) to {ref} ({tier})"
                journey.history.append(note)
                moved = Decision(decision.verdict, ref, tier, decision.notes + (note,))
                return _warned(moved, reservation), reservation.hold if reservation else None
        return None

    # ------------------------------------------------------------ cache

    def fill_from_cache(self, row: dict[str, Any], decision: Decision, hit: Any) -> Any:
        """Fill a row answered from the cache: cost 0, what it saved, the row it reused; the baseline."""
        from routecli.pricing import price, to_micros

        usage, baseline = hit.usage, None
        if usage is not None and self.config.baseline is not None:
            baseline = price(usage, self.config.baseline, self.config).cost
        row.update(status="ok", answer=hit.answer if self.config.save_text else None, latency_ms=0.0,
                   cost_micros=0, baseline_cost_micros=to_micros(baseline), price_source="cache",
                   cache_kind=hit.kind, cache_source_id=hit.attempt_id, saved_micros=hit.cost_micros,
                   similarity=hit.similarity)
        return baseline

    # ------------------------------------------------------------ escalation

    def assess(self, journey: Journey, row: dict[str, Any], outcome: Outcome) -> None:
        self.judge(journey, outcome)
        fill_assessment(row, outcome)

    def expect(self, journey: Journey, decision: Decision) -> Asked | None:
        """The request's side of judge(), which can be worked out before the answer arrives."""
        if getattr(self.config, "escalation", None) is None:
            return None
        return _assessor().expect(journey.request, decision.verdict.signals)

    def judge(self, journey: Journey, outcome: Outcome, asked: Asked | None = None) -> None:
        """The answer's confidence and what looked weak, on the outcome (fill_assessment copies them
        to its row); `asked` is expect()'s, if it was worked out already."""
        if getattr(self.config, "escalation", None) is None or outcome.reply is None:
            return
        assessment = _assessor().assess(journey.request, outcome.reply, signals=outcome.decision.verdict.signals,
                                        asked=asked)
        outcome.confidence = assessment.confidence
        outcome.assessment_reasons = tuple(assessment.reasons)

    def escalation(self, journey: Journey, decision: Decision, outcome: Outcome) -> Decision | None:
        """The model one tier up when the answer looks weak (once per request by default)."""
        settings = getattr(self.config, "escalation", None)
        confidence = outcome.confidence
        if (settings is None or not settings.enabled or confidence is None or confidence >= settings.threshold
                or journey.escalations >= settings.max_escalations or journey.step == "escalation"):
            return None
        target = tier_above(decision, journey.request, self.config, self.keys.has, self.window_of)
        if target is None:
            return None
        ref, tier = target
        why = ", ".join(outcome.assessment_reasons) or "low confidence"
        journey.escalations += 1
        journey.parent, journey.step, journey.chain = outcome.attempt_id, "escalation", []
        journey.history.append(f"escalated from {decision.model} to {ref}: confidence {confidence:.2f} ({why})")
        return Decision(decision.verdict, ref, tier, decision.notes + (f"escalated: confidence {confidence:.2f}",))


@functools.cache
def _assessor() -> Any:
    """routing.assess, imported once on first use: its import takes ~14 ms (its regexes), which a
    config without escalation never needs; an import in the function itself cost ~1 µs a call."""
    from routecli.routing import assess

    return assess


def _warned(decision: Decision, reservation: Any) -> Decision:
    if reservation is None or not reservation.warnings:
        return decision
    return replace(decision, notes=decision.notes + reservation.warnings)


class Flow:
    """The synchronous driver, for `ask`: streams the answer, and says when another attempt replaces it."""

    def __init__(self, engine: Engine, gate: Gate, *, stream: bool, on_text: Callable[[str], None] | None,
                 on_restart: Callable[[str], None] | None = None) -> None:
        self.engine, self.gate, self.config = engine, gate, engine.config
        self.policy = Policy(engine.config, engine.keys, gate, engine._window_of)
        self.stream, self.on_text = stream, on_text
        self.on_restart = on_restart or (lambda _note: None)

    def run(self, request: Request, decision: Decision, request_id: str, *, source: str,
            run_id: str | None) -> Outcome:
        from routecli.routing.choose import fallback_chain

        def chain() -> list[tuple[ModelRef, str]]:
            return fallback_chain(decision, request, self.config, self.engine.keys.has, self.engine._window_of)

        journey = Journey(request, request_id, source, run_id, chain)
        step: Outcome | Decision = decision
        while isinstance(step, Decision):
            journey.attempts += 1
            step = self._attempt(journey, step)
        step.history = journey.history
        return step

    def _attempt(self, journey: Journey, decision: Decision) -> Outcome | Decision:
        admitted, note = self.policy.admit(journey, decision.model)
        if not admitted:
            row = self.policy.row(journey, decision)
            self._skip(row, decision, "open_circuit", note)
            return self._fallback(journey, decision, row["id"], "open_circuit", ProviderError(
                f"{note}; no other model to fall back to: wait for the cooldown, or add models to the tier",
                kind="open_circuit", provider=decision.model.provider, model=decision.model.model))
        if note:
            decision = replace(decision, notes=decision.notes + (note,))
        try:
            decision, hold = self.policy.reserve(journey, decision)
        except BudgetRefused as refused:
            self._skip(refused.row, decision, "budget", refused.message)
            raise BudgetError(refused.message) from None
        try:
            key = self.gate.cache_key(journey.request, decision.model)
            hit = self.gate.cached(key)
            if hit is not None:
                return self._from_cache(self.policy.row(journey, decision), decision, hit)
            return self._call(journey, decision, key)
        finally:
            self.gate.release(hold)  # the cost, if any, is in the ledger by now

    def _call(self, journey: Journey, decision: Decision, key: Any) -> Outcome | Decision:
        from routecli.engine import priced

        row = self.policy.row(journey, decision)
        partial: list[str] = []

        def collect(delta: str) -> None:
            partial.append(delta)
            if self.on_text:
                self.on_text(delta)

        started = time.perf_counter()
        try:
            reply = self.engine._call(decision, journey.request, self.stream, collect)
            refusal(reply, decision)
        except ProviderError as exc:
            self.engine._record_failure(row, decision, exc.kind, str(exc), started, "".join(partial))
            self._breaker(decision.model, exc.kind, journey)
            if journey.step == "escalation" and journey.weak is not None:
                return self._keep_weak(journey, exc)
            return self._fallback(journey, decision, row["id"], exc.kind, exc)
        except KeyboardInterrupt:
            self.engine._record_failure(row, decision, "interrupted", "stopped by the user", started, "".join(partial))
            raise
        outcome = priced(row, decision, reply, self.config)
        self.policy.assess(journey, row, outcome)
        self.engine._finish(row, outcome)
        self._breaker(decision.model, None, journey)
        self.gate.remember(key, decision.model, reply, row["id"], row.get("cost_micros"))
        escalate = self.policy.escalation(journey, decision, outcome)
        if escalate is None:
            return outcome
        journey.weak = outcome
        self.on_restart(f"the {decision.tier} answer looks weak; asking {escalate.model} ({escalate.tier})")
        return escalate

    def _fallback(self, journey: Journey, decision: Decision, row_id: str, kind: str,
                  exc: ProviderError) -> Decision:
        nxt = self.policy.next_model(journey, decision, row_id, kind)
        if nxt is None:
            raise exc
        self.on_restart(f"{decision.model} failed ({kind}); trying {nxt.model}")
        return nxt

    def _keep_weak(self, journey: Journey, exc: ProviderError) -> Outcome:
        weak = journey.weak
        journey.history.append(f"escalation failed ({exc.kind}); kept the first answer")
        self.on_restart(f"escalation failed ({exc.kind}); the first answer stands")
        if self.on_text and weak.reply is not None:
            self.on_text(weak.reply.text)
        return weak

    def _from_cache(self, row: dict[str, Any], decision: Decision, hit: Any) -> Outcome:
        from routecli.engine import Outcome
        from routecli.pricing import from_micros

        baseline = self.policy.fill_from_cache(row, decision, hit)
        reply = Reply(hit.answer, None, decision.model.model, "cached", None, 0.0)
        if self.on_text:
            self.on_text(hit.answer)
        outcome = Outcome(row["id"], decision, "ok", reply, cost=from_micros(0), baseline_cost=baseline,
                          price_source="cache", cache_kind=hit.kind,
                          saved_cost=None if hit.cost_micros is None else from_micros(hit.cost_micros))
        return self.engine._finish(row, outcome)

    def _breaker(self, ref: ModelRef, kind: str | None, journey: Journey) -> None:
        note = self.gate.report(ref, kind)
        if note:
            journey.history.append(note)

    def _skip(self, row: dict[str, Any], decision: Decision, kind: str, message: str) -> None:
        from routecli.engine import Outcome

        mark_skipped(row, kind, message)
        self.engine._finish(row, Outcome(row["id"], decision, "skipped"))
