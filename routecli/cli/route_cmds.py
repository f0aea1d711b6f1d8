"""`routecli route` (decide, call nothing) and `routecli calibrate` (thresholds from traffic)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional

import typer

from routecli.cli import app
from routecli.errors import RoutecliError, UsageError

if TYPE_CHECKING:
    from routecli.inputs import InputLine


def _lines(prompt: str | None, file: Path | None) -> Iterator[InputLine]:
    from routecli.inputs import InputLine, read_jsonl
    from routecli.domain import Message, Request

    if (prompt is None) == (file is None):
        raise UsageError("Give a prompt or --file PROMPTS.jsonl (one of the two)")
    if prompt is not None:
        from routecli.cli.ask import read_prompt

        yield InputLine(1, "1", Request((Message("user", read_prompt(prompt)),)))
        return
    if str(file) == "-":
        yield from read_jsonl(sys.stdin.buffer)
        return
    try:
        handle = open(file, "rb")
    except OSError as exc:
        raise UsageError(f"Cannot read {file}: {exc.strerror or exc}; check the path") from None
    with handle:
        yield from read_jsonl(handle, base_dir=file.parent)


def _decide(engine: Any, line: InputLine) -> dict[str, Any]:
    if line.request is None:
        return {"id": line.id, "line": line.line_no, "error": line.error}
    try:
        decision = engine.decide(line.request, dry_run=True)
    except RoutecliError as exc:
        return {"id": line.id, "line": line.line_no, "error": f"line {line.line_no}: {exc}"}
    verdict = decision.verdict
    return {
        "id": line.id,
        "score": round(verdict.score, 4),
        "tier": decision.tier,
        "model": str(decision.model),
        "reasons": list(verdict.reasons),
        "phase": verdict.phase,
        "notes": list(decision.notes),
    }


@app.command()
def route(
    prompt: Optional[str] = typer.Argument(None, help="A prompt (- reads stdin); or use --file."),
    file: Optional[Path] = typer.Option(None, "--file", "-f", help="JSONL prompts, one request per line (- for stdin)."),
    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table."),
    router: Optional[str] = typer.Option(None, "--router", help="Classifier for lines that name none: NAME or "
                                         "NAME:THRESHOLD."),
) -> None:
    """Decide tier and model for prompts without calling any model or recording anything."""
    from routecli.cli.output import error
    from routecli.config import load_config
    from routecli.engine import Engine
    from routecli.keys import KeyRing

    config = load_config()
    engine = Engine(config, None, KeyRing(config))
    if router:
        from routecli.analytics.ab import router_strategy

        router_strategy(router)  # a bad name is refused before any line is read
        engine.router = router
    results = (_decide(engine, line) for line in _lines(prompt, file))
    failed = 0
    rows = []
    for result in results:
        if "error" in result:
            failed += 1
            error(result["error"])
        if as_json:
            typer.echo(json.dumps(result, ensure_ascii=False))
        else:
            rows.append(result)
    if not as_json:
        _table(rows)
    if failed:
        raise typer.Exit(1)


def _table(rows: list[dict[str, Any]]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("id", "score", "tier", "model", "phase", "reasons"):
        table.add_column(name, no_wrap=name != "reasons", justify="right" if name == "score" else "left")
    for row in rows:
        if "error" in row:
            table.add_row(row["id"], "", "", "", "error", row["error"], style="red")
        else:
            table.add_row(row["id"], f"{row['score']:.2f}", row["tier"], row["model"], row["phase"], "; ".join(row["reasons"]))
    Console(width=None if sys.stdout.isatty() else 200).print(table)


@app.command()
def calibrate(
    strong_share: Optional[float] = typer.Option(None, "--strong-share", help="Share for the strongest tier, 0..1."),
    shares: Optional[str] = typer.Option(None, "--shares", help="Every tier's share, e.g. cheap=0.5,standard=0.3,premium=0.2."),
    file: Optional[Path] = typer.Option(None, "--file", "-f", help="Calibrate on these JSONL prompts."),
    from_log: bool = typer.Option(False, "--from-log", help="Calibrate on the prompts in the ledger."),
    since: Optional[str] = typer.Option(None, "--since", help="With --from-log: only prompts since (7d, 2026-11-01)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the thresholds; do not write them."),
    db: Optional[str] = typer.Option(None, "--db", envvar="ROUTECLI_DB", help="Ledger path or URL."),
) -> None:
    """Set tier thresholds so each tier gets the share of YOUR traffic you ask for."""
    from routecli.cli.output import note
    from routecli.config import load_config
    from routecli.config_edit import set_values
    from routecli.routing import CLASSIFIERS
    from routecli.routing import calibrate as cal

    config = load_config()
    if (strong_share is None) == (shares is None):
        raise UsageError("Give --strong-share X or --shares tier=X,... (one of the two)")
    targets = cal.shares_from_strong(config.tier_order, strong_share) if shares is None else cal.parse_shares(shares, config.tier_order)
    prompts = _calibration_prompts(file, from_log, since, db)
    scorer, _version = CLASSIFIERS[config.classifier]
    scores = [scorer(request)[0] for request in prompts]
    thresholds = cal.thresholds_for_shares(scores, config.tier_order, targets)
    achieved = cal.achieved_shares(scores, config.tier_order, thresholds)
    for tier in config.tier_order:
        cut = f">= {thresholds[tier]:.4f}" if tier in thresholds else "(lowest)"
        typer.echo(f"{tier}\t{cut}\ttarget {targets[tier]:.0%}\tgets {achieved[tier]:.0%}")
    if dry_run:
        note(f"dry run: calibrated on {len(scores)} prompts with {config.classifier}; nothing written")
        return
    settings = {f"routing.thresholds.{tier}": str(value) for tier, value in thresholds.items()}
    settings.update({f"routing.target_shares.{tier}": str(round(share, 4)) for tier, share in targets.items()})
    path = set_values(settings)  # the targets too: `routecli insights` watches for drift from them
    note(f"calibrated on {len(scores)} prompts with {config.classifier}; wrote routing.thresholds to {path}")


def _calibration_prompts(file: Path | None, from_log: bool, since: str | None, db: str | None) -> list:
    from routecli.cli.output import warn
    from routecli.domain import Message, Request

    if (file is None) == (not from_log):
        raise UsageError("Calibrate on --file PROMPTS.jsonl or --from-log (one of the two)")
    if file is not None:
        lines = list(_lines(None, file))
        bad = [line for line in lines if line.request is None]
        if bad:
            warn(f"skipped {len(bad)} unusable line(s), first: {bad[0].error}")
        return [line.request for line in lines if line.request is not None]
    from routecli.analytics.prompts import logged_prompts
    from routecli.cli.ledger import _open, parse_when

    store = _open(db)
    try:
        texts = list(logged_prompts(store, since=parse_when(since)))
    finally:
        store.close()
    if not texts:
        raise UsageError("The ledger holds no prompt text to calibrate on (store.save_text may be off); use --file")
    return [Request((Message("user", text),)) for text in texts]
