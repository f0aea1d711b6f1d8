"""`routecli budget` (spend against each limit) and `routecli health` (each model's breaker, errors, latency)."""

from __future__ import annotations

import json
from typing import Any, Optional

import typer

from routecli.cli import app


def _open(db: str | None) -> Any:
    from routecli.config import db_location
    from routecli.store import open_store

    return open_store(db_location(db))


@app.command()
def budget(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    db: Optional[str] = typer.Option(None, "--db", envvar="ROUTECLI_DB", help="Ledger path or URL."),
) -> None:
    """Spend so far against each limit in [budgets] (UTC days and months), and budget alerts."""
    from routecli.analytics.guards import budget_report
    from routecli.config import load_config

    config = load_config()
    with _open(db) as store:
        report = budget_report(store, config)
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False))
        return
    from routecli.cli.output import note

    if not report["limits"]:
        note("no budget set: add one with `routecli config set budgets.daily 5.00` (or monthly, total; "
             "per agent: budgets.agents.NAME.daily), or pass --budget to `routecli batch`")
    _table("Budgets", ["limit", "spent", "held", "limit $", "used"],
           [[b["label"], _usd(b["spent_micros"]), _usd(b["reserved_micros"]), _usd(b["limit_micros"]),
             f"{b['share']:.0%}"] for b in report["limits"]])
    for alert in report["alerts"]:
        note(f"alert {alert['created_at'][:16]}: {alert['message']}")


@app.command()
def health(
    since: str = typer.Option("1h", "--since", help="Window for error rates and latency: 1h, 24h, 7d..."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    db: Optional[str] = typer.Option(None, "--db", envvar="ROUTECLI_DB", help="Ledger path or URL."),
) -> None:
    """Each configured model's circuit breaker, recent error rate and latency."""
    from routecli.analytics.guards import health_report
    from routecli.when import parse_when
    from routecli.config import load_config

    config = load_config()
    with _open(db) as store:
        report = health_report(store, config, parse_when(since))
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False))
        return
    _table(f"Models, last {since}", ["tier", "model", "breaker", "calls", "errors", "p50 ms", "last error"],
           [[m["tier"], m["model"], m["breaker_text"], str(m["calls"]),
             "-" if m["error_rate"] is None else f"{m['error_rate']:.0%}",
             "-" if m["p50_ms"] is None else f"{m['p50_ms']:.0f}", m["last_error"] or ""] for m in report["models"]])


def _usd(micros: int) -> str:
    return f"${micros / 1_000_000:,.4f}"


def _table(title: str, headers: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for header in headers:
        table.add_column(header)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


cache_app = typer.Typer(help="The response cache: what it holds and saved; clear it.", no_args_is_help=True)


@cache_app.command("stats")
def cache_stats(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    db: Optional[str] = typer.Option(None, "--db", envvar="ROUTECLI_DB", help="Ledger path or URL."),
) -> None:
    """Entries, hits and the money hits saved."""
    from datetime import datetime, timezone

    from routecli.store import response_cache, similar_cache

    with _open(db) as store:
        now = datetime.now(timezone.utc)
        figures = response_cache.stats(store, now)
        figures["similar"] = similar_cache.stats(store, now)
    if as_json:
        typer.echo(json.dumps(figures))
        return
    near = figures["similar"]
    typer.echo(f"exact: {figures['entries']:,} entries ({figures['expired']:,} expired), {figures['hits']:,} hits, "
               f"{_usd(figures['saved_micros'])} saved; similar: {near['entries']:,} entries, {near['hits']:,} hits, "
               f"{_usd(near['saved_micros'])} saved")


@cache_app.command("clear")
def cache_clear(db: Optional[str] = typer.Option(None, "--db", envvar="ROUTECLI_DB", help="Ledger path or URL.")) -> None:
    """Forget every cached answer (the ledger rows that used them stay)."""
    from routecli.cli.output import note
    from routecli.store import response_cache, similar_cache

    with _open(db) as store:
        note(f"removed {response_cache.clear(store) + similar_cache.clear(store):,} cached answers")


@app.command()
def insights(
    since: str = typer.Option("30d", "--since", help="Look back this far: 30d, 7d, 24h or an ISO date."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    db: Optional[str] = typer.Option(None, "--db", envvar="ROUTECLI_DB", help="Ledger path or URL."),
) -> None:
    """Suggestions from the ledger, each with its numbers and the command that applies it."""
    from routecli.analytics.insights import insights as find
    from routecli.when import parse_when
    from routecli.config import load_config

    config = load_config()
    with _open(db) as store:
        found = find(store, config, parse_when(since))
    if as_json:
        typer.echo(json.dumps({"since": since, "insights": found}, ensure_ascii=False))
        return
    if not found:
        from routecli.cli.output import note

        note(f"no suggestions for the last {since}: nothing in the ledger crosses a rule's threshold")
    for item in found:
        typer.echo(f"- {item['message']}\n    {item['command']}")
