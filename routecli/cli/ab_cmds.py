"""`routecli ab start|stop|list|report` and `routecli feedback`: A/B tests of routing strategies."""

from __future__ import annotations

import json
import sys
from typing import Any, List, Optional

import typer

from routecli.cli import app

ab_app = typer.Typer(
    help="A/B tests of routing strategies: each request is routed by one variant's strategy, "
    "chosen by a hash of its prompt, agent or first tag, and recorded with it.",
    no_args_is_help=True,
)

_STRATEGY_HELP = (
    "NAME=STRATEGY; a strategy is CLASSIFIER (your thresholds), CLASSIFIER@SCORE (score >= SCORE: "
    "strongest tier, else cheapest) or CLASSIFIER:TIER=SCORE,... e.g. a=rules, b=learned@0.5, "
    "c=learned:standard=0.45,premium=0.54"
)
_DB = typer.Option(None, "--db", envvar="ROUTECLI_DB", help="Ledger path or URL.")
_JSON = typer.Option(False, "--json", help="Print JSON.")


def _store(db: str | None):
    from routecli.config import db_location
    from routecli.store import open_store

    return open_store(db_location(db))


@ab_app.command("start")
def ab_start(
    name: str = typer.Argument(..., help="A name for the test, e.g. learned-vs-rules."),
    variant: List[str] = typer.Option(..., "--variant", "-v", help=_STRATEGY_HELP),
    split: Optional[str] = typer.Option(None, "--split", help="Percent per variant, e.g. 50/50 or 70/30 (default: even)."),
    by: str = typer.Option("prompt", "--by", help="What a request's variant is a hash of: prompt, agent or tag "
                           "(the first tag); requests without an agent / tag are in no variant."),
    as_json: bool = _JSON,
    db: Optional[str] = _DB,
) -> None:
    """Start routing new requests by the variants' strategies (one test runs at a time)."""
    from routecli.analytics.ab import ABTest, check_name, parse_split, parse_variant
    from routecli.analytics.ab_store import start_test
    from routecli.cli.output import note
    from routecli.config import load_config

    variants = tuple(parse_variant(text) for text in variant)
    config = load_config()
    for _, strategy in variants:
        strategy.check(config)
    test = ABTest(check_name(name), variants, parse_split(split, len(variants)), by)
    with _store(db) as store:
        started = start_test(store, test)
    if as_json:
        typer.echo(json.dumps(started, indent=2))
    arms = ", ".join(f"{v['name']}={v['strategy']}" for v in started["variants"])
    note(f"started A/B test {name}: {arms}, split {started['split']} by {by}; `routecli ab report {name}` shows results")


@ab_app.command("stop")
def ab_stop(name: str = typer.Argument(...), as_json: bool = _JSON, db: Optional[str] = _DB) -> None:
    """Stop assigning requests to the test; its results stay in the ledger."""
    from routecli.analytics.ab_store import stop_test
    from routecli.cli.output import note

    with _store(db) as store:
        stopped = stop_test(store, name)
    if as_json:
        typer.echo(json.dumps(stopped, indent=2))
    note(f"stopped A/B test {name}; `routecli ab report {name}` shows its results")


@ab_app.command("list")
def ab_list(as_json: bool = _JSON, db: Optional[str] = _DB) -> None:
    """Every A/B test, running or stopped."""
    from routecli.analytics.ab_store import describe, list_rows

    with _store(db) as store:
        tests = [describe(row) for row in list_rows(store)]
    if as_json:
        typer.echo(json.dumps(tests, indent=2))
        return
    if not tests:
        from routecli.cli.output import note

        note("no A/B tests yet: routecli ab start NAME --variant a=rules --variant b=learned@0.5")
    for test in tests:
        arms = " ".join(f"{v['name']}={v['strategy']}" for v in test["variants"])
        typer.echo(f"{test['name']}\t{test['status']}\tby {test['by']}\t{test['split']}\t{arms}\t{test['started_at']}")


@ab_app.command("report")
def ab_report_cmd(
    name: str = typer.Argument(...),
    metric: str = typer.Option("cost", "--metric", help="Primary metric: cost, feedback, escalation, errors or confidence."),
    as_json: bool = _JSON,
    db: Optional[str] = _DB,
) -> None:
    """Per variant: requests, cost per request, escalation and error rates, feedback and confidence,
    each with a 95% interval (normal for means, Wilson for rates), and pairwise two-sided tests
    (Welch t for means, two-proportion z for rates).

    A variant is named the winner only when it beats every other variant on the primary metric
    with p < 0.05 divided by the number of pairs, every variant has at least 30 requests with
    that metric known, and it is not significantly worse on feedback, escalation or error rate.
    A request counts all its attempts (judge, retries, fallbacks, escalation); requests whose
    price is unknown are left out of cost, and dry runs out of everything."""
    from routecli.analytics.ab_report import ab_report

    with _store(db) as store:
        report = ab_report(store, name, metric=metric)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        _render_report(report)


def _interval(figure: dict[str, Any], kind: str, scale: float = 1.0, unit: str = "") -> str:
    value = figure["rate" if kind == "rate" else "mean"]
    if value is None:
        return "-"
    if kind == "rate":
        text = f"{value * 100:.1f}%"
        ci = figure["ci95"] and f" [{figure['ci95'][0] * 100:.1f}, {figure['ci95'][1] * 100:.1f}]"
    else:
        text = f"{unit}{value * scale:.6g}"
        ci = figure["ci95"] and f" [{figure['ci95'][0] * scale:.6g}, {figure['ci95'][1] * scale:.6g}]"
    return text + (ci or "")


def _render_report(report: dict[str, Any]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    test = report["test"]
    arms = ", ".join(f"{v['name']}={v['strategy']}" for v in test["variants"])
    console.print(f"A/B test {test['name']} ({test['status']}, by {test['by']}, split {test['split']}): {arms}",
                  highlight=False)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for header in ("variant", "requests", "cost / request [95% CI]", "escalation", "errors", "feedback (n)", "confidence"):
        table.add_column(header, justify="left" if header == "variant" else "right", no_wrap=True)
    for name, v in report["variants"].items():
        table.add_row(
            name, str(v["requests"]),
            _interval(v["cost"], "mean", 1e-6, "$"),
            _interval(v["escalation"], "rate"), _interval(v["errors"], "rate"),
            _interval(v["feedback"], "mean") + f" ({v['feedback']['n']})",
            _interval(v["confidence"], "mean"),
        )
    console.print(table)
    for c in report["comparisons"]:
        if c["p"] is not None:
            favoured = c[c["better"]] if c["better"] else "neither"
            console.print(f"{c['a']} vs {c['b']}, {c['metric']}: {c['test']} p = {c['p']:.3g}, favours {favoured}",
                          style="dim", highlight=False)
    dry = sum(v["dry_runs"] for v in report["variants"].values())
    unpriced = sum(v["unpriced"] for v in report["variants"].values())
    if dry or unpriced:
        console.print(f"left out: {dry} dry-run request(s); {unpriced} request(s) of unknown price (from cost only)",
                      style="dim", highlight=False)
    style = "bold green" if report["winner"] else "bold"
    console.print(report["verdict"], style=style, highlight=False)


@app.command("feedback")
def feedback(
    ident: str = typer.Argument(..., metavar="ID", help="An attempt id or a request id (`ask --json` prints it)."),
    score: float = typer.Option(..., "--score", help="How good the answer was: 0 (useless) to 1 (perfect)."),
    note_text: Optional[str] = typer.Option(None, "--note", help="Why, in a few words."),
    as_json: bool = _JSON,
    db: Optional[str] = _DB,
) -> None:
    """Score an answer; A/B reports use each request's latest score as its quality signal."""
    from routecli.analytics.ab_store import add_feedback
    from routecli.cli.output import note

    with _store(db) as store:
        row = add_feedback(store, ident, score, note_text)
    if as_json:
        typer.echo(json.dumps(row, indent=2))
    note(f"recorded score {score:g} for request {row['request_id']}")
