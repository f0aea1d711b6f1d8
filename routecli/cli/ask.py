"""`routecli ask`: route one prompt, stream the answer to stdout, a one-line footer to stderr."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from routecli.cli import app
from routecli.errors import UsageError

if TYPE_CHECKING:
    from routecli.domain import Request
    from routecli.engine import Outcome

def read_prompt(text: str) -> str:
    """The prompt argument, or stdin when it is `-`; invalid UTF-8 is refused, not guessed."""
    if text != "-":
        return text
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError("The prompt on stdin is not UTF-8 text; convert it (e.g. with iconv) first") from None


@app.command()
def ask(
    prompt: str = typer.Argument(..., help="The prompt, or - to read it from stdin."),
    system: Optional[str] = typer.Option(None, "--system", "-s", help="System prompt."),
    tier: Optional[str] = typer.Option(None, "--tier", "-t", help="Force a tier (skips the classifier)."),
    router: Optional[str] = typer.Option(None, "--router", help="Classifier for this request, NAME or "
                                         "NAME:THRESHOLD (two-way: at or above it, the strongest tier)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Force a model, as provider:model."),
    agent: Optional[str] = typer.Option(None, "--agent", help="Who is asking (recorded)."),
    tag: list[str] = typer.Option([], "--tag", help="A tag to record; repeatable."),
    image: list[Path] = typer.Option([], "--image", "-i", help="Attach an image file; repeatable."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help="Cap the answer's length."),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="Sampling temperature (0-2)."),
    no_stream: bool = typer.Option(False, "--no-stream", help="Wait for the whole answer."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of text."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Decide and record; call no model."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Always call the model (temperature-0 answers "
                                  "are otherwise reused from the cache)."),
    api_key: Optional[str] = typer.Option(None, "--api-key", help="Key for the --model's provider only."),
    db: Optional[str] = typer.Option(None, "--db", envvar="ROUTECLI_DB", help="Ledger path or URL."),
) -> None:
    """Route a prompt to the cheapest model that should answer it well, and record the call."""
    from routecli.domain import Message, Request

    if api_key and not model:
        raise UsageError("--api-key needs --model PROVIDER:MODEL, so the key is sent only to that provider")
    from routecli.inputs import read_image

    images = tuple(read_image(path) for path in image)
    request = Request(
        messages=(Message("user", read_prompt(prompt), images),),
        system=system,
        max_tokens=max_tokens,
        temperature=temperature,
        agent=agent,
        tags=tuple(tag),
        tier=tier,
        model=model,
        router=router,
    )
    outcome = _run(request, api_key, db, dry_run=dry_run, stream=not no_stream, echo=not as_json,
                   use_cache=not no_cache)
    if as_json:
        typer.echo(json.dumps(outcome_json(outcome), ensure_ascii=False))
    elif dry_run:
        typer.echo(_decision_line(outcome))
    _footer(outcome)


def _run(request: Request, api_key: str | None, db: str | None, *, dry_run: bool, stream: bool, echo: bool,
         use_cache: bool = True) -> Outcome:
    from routecli.config import db_location, load_config
    from routecli.domain import ModelRef
    from routecli.engine import Engine, validate
    from routecli.keys import KeyRing

    config = load_config()
    validate(request, config)  # before the ledger is even opened: bad input writes nothing
    provider = ModelRef.parse(request.model).provider if request.model else None
    keys = KeyRing(config, cli_key=api_key, cli_provider=provider)
    from routecli.store import open_store

    store = open_store(db_location(db))
    engine = Engine(config, store, keys)
    screen = AnswerOutput(live=sys.stdout.isatty())
    try:
        outcome = engine.ask(request, dry_run=dry_run, stream=stream, on_text=screen.write if echo else None,
                             on_restart=screen.restart, use_cache=use_cache)
        if not dry_run:
            report_alerts(store, config)
        return outcome
    finally:
        screen.close()
        engine.close()
        store.close()


def report_alerts(store: object, config: object) -> None:
    """Check the alert rules after a run; each new alert is one warning line (and a row)."""
    from routecli.analytics.alerts import check_alerts
    from routecli.cli.output import warn

    for alert in check_alerts(store, config):
        warn(f"alert: {alert.message} (`routecli alerts ack {alert.id}`)")


class AnswerOutput:
    """The answer on stdout. A person at a terminal sees it as it streams, and a note when a
    fallback or an escalation replaces it; a pipe gets only the answer that stands."""

    def __init__(self, *, live: bool) -> None:
        self.live = live
        self.parts: list[str] = []

    def write(self, delta: str) -> None:
        self.parts.append(delta)
        if self.live:
            sys.stdout.write(delta)
            sys.stdout.flush()

    def restart(self, note: str) -> None:
        from routecli.cli.output import warn

        if self.live and self.parts and not "".join(self.parts).endswith("\n"):
            sys.stdout.write("\n")
        self.parts = []
        warn(note)

    def close(self) -> None:
        text = "".join(self.parts)
        if not self.live:
            sys.stdout.write(text)
        if text and not text.endswith("\n"):
            sys.stdout.write("\n")
        sys.stdout.flush()


def outcome_json(outcome: Outcome) -> dict:
    decision, reply = outcome.decision, outcome.reply
    usage = reply.usage if reply else None
    money = lambda d: None if d is None else str(d)  # noqa: E731
    return {
        "id": outcome.attempt_id,
        "status": outcome.status,
        "answer": reply.text if reply else None,
        "tier": decision.tier,
        "provider": decision.model.provider,
        "model": decision.model.model,
        "score": round(decision.verdict.score, 4),
        "phase": decision.verdict.phase,
        "reasons": list(decision.verdict.reasons),
        "notes": list(decision.notes),
        "usage": None if usage is None else {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cached_tokens": usage.cached_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
        },
        "cost_usd": money(outcome.cost),
        "baseline_cost_usd": money(outcome.baseline_cost),
        "price_source": outcome.price_source,
        "latency_ms": round(reply.latency_ms, 1) if reply else None,
        "ttft_ms": round(reply.ttft_ms, 1) if reply and reply.ttft_ms is not None else None,
        "warnings": outcome.warnings,
        "confidence": None if outcome.confidence is None else round(outcome.confidence, 3),
        "cache": outcome.cache_kind,
        "saved_usd": money(outcome.saved_cost),
        "history": outcome.history,
    }


def _decision_line(outcome: Outcome) -> str:
    decision = outcome.decision
    return f"{decision.tier}\t{decision.model}\tscore={decision.verdict.score:.2f}\t{'; '.join(decision.verdict.reasons)}"


def _footer(outcome: Outcome) -> None:
    from routecli.cli.output import note, warn

    for text in outcome.warnings:
        warn(text)
    for text in outcome.decision.notes:
        note(text)
    for text in outcome.history:
        note(text)
    if outcome.status == "dry-run":
        note("dry run: no model was called; the decision is recorded")
    else:
        note(footer_text(outcome))


def footer_text(outcome: Outcome) -> str:
    decision, reply = outcome.decision, outcome.reply
    parts = [decision.tier, str(decision.model), "; ".join(decision.verdict.reasons[:3])]
    if reply and reply.usage:
        parts.append(f"{reply.usage.input_tokens}→{reply.usage.output_tokens} tokens")
    if outcome.cache_kind:
        saved = f", saved ${outcome.saved_cost:.6f}" if outcome.saved_cost is not None else ""
        parts.append(f"from the cache{saved}")
    elif reply:
        parts.append(_cost_text(outcome))
        parts.append(f"{reply.latency_ms / 1000:.2f} s")
    return " · ".join(part for part in parts if part)


def _cost_text(outcome: Outcome) -> str:
    if outcome.cost is None:
        return "cost unknown"
    text = f"${outcome.cost:.6f}"
    if outcome.baseline_cost:
        saved = 1 - outcome.cost / outcome.baseline_cost
        text += f" ({saved:.0%} less than the baseline)" if saved >= 0 else f" ({-saved:.0%} more than the baseline)"
    return text
