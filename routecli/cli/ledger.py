"""`routecli stats` and `routecli export`: read the ledger. Data on stdout, messages on stderr."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer

from routecli.cli import app
from routecli.errors import UsageError
from routecli.when import parse_when, split_list  # noqa: F401  (the commands' time and list options)

def _open(db: str | None):
    from routecli.config import db_location
    from routecli.store import open_store

    return open_store(db_location(db))


@app.command()
def stats(
    since: Optional[str] = typer.Option(None, "--since", help="From this time: 7d, 24h or an ISO date."),
    until: Optional[str] = typer.Option(None, "--until", help="Up to (not including) this time."),
    by: Optional[list[str]] = typer.Option(
        None, "--by", help="Break down by tier, model, provider, agent, tag or day (repeat or comma-separate; "
        "default: tier and model)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    db: Optional[str] = typer.Option(None, "--db", envvar="ROUTECLI_DB", help="Ledger path or URL."),
) -> None:
    """Requests, tokens, cost, savings against the baseline, latency, rates and open alerts."""
    import json

    from routecli.analytics.stats import check_by, compute_stats

    dims = check_by(split_list(by))
    window = {"since": parse_when(since), "until": parse_when(until)}
    store = _open(db)
    try:
        report = compute_stats(store, by=dims, **window)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        _render_stats(report)


def usd(text: str | None) -> str:
    """Dollars for people: cents for large sums, micro-dollar precision for small ones."""
    if text is None:
        return "-"
    from decimal import Decimal

    amount = Decimal(text)
    if amount == 0:
        return "$0"
    if abs(amount) >= 1:
        return f"${amount:,.2f}"
    return "$" + format(amount.quantize(Decimal("0.000001")).normalize(), "f")


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.1f}%"


def _secs(ms: float | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.2f}s"


# The JSON has every figure; the table keeps what fits a wide terminal.
_HEADERS = ("requests", "ok", "errors", "tokens", "cost", "saved", "saved %", "p50", "p95", "p99", "ttft",
            "fallback", "escalated", "cached", "confidence")


def _tokens(count: int) -> str:
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if count >= size:
            return f"{count / size:.1f}{unit}"
    return str(count)


def _row(label: str, group: dict[str, Any]) -> list[str]:
    savings, latency, rates = group["savings"], group["latency_ms"], group["rates"]
    unpriced = f" +{group['cost_unknown']} unpriced" if group["cost_unknown"] else ""
    confidence = group["confidence_mean"]
    return [
        label,
        f"{group['requests']:,}",
        f"{group['ok']:,}",
        f"{group['errors']:,} ({_pct(rates['error'])})" if group["errors"] else "0",
        _tokens(group["input_tokens"] + group["output_tokens"]),
        usd(group["cost_usd"]) + unpriced,
        usd(savings["saved_usd"]),
        "-" if savings["saved_pct"] is None else f"{float(savings['saved_pct']):.1f}%",
        _secs(latency["p50"]),
        _secs(latency["p95"]),
        _secs(latency["p99"]),
        _secs(group["ttft_ms"]["p50"]),
        _pct(rates["fallback"]),
        _pct(rates["escalation"]),
        _pct(rates["cache_hit"]),
        "-" if confidence is None else f"{confidence:.2f}",
    ]


def _headline(report: dict[str, Any]) -> str:
    totals = report["totals"]
    savings = totals["savings"]
    if not savings["rows"]:
        return f"{totals['requests']:,} requests, {totals['ok']:,} answered; nothing priced against the baseline yet"
    pct = "" if savings["saved_pct"] is None else f" ({float(savings['saved_pct']):.1f}%)"
    return (
        f"{totals['requests']:,} requests, {totals['ok']:,} answered, cost {usd(totals['cost_usd'])}; routing saved "
        f"{usd(savings['saved_usd'])}{pct} against the baseline model"
    )


def _render_stats(report: dict[str, Any]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    # in a pipe there is no terminal width to respect; never truncate the figures
    console = Console(width=None if sys.stdout.isatty() else 240)
    console.print(_headline(report), highlight=False)
    for dim in report["by"]:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column(dim, no_wrap=True)
        for header in _HEADERS:
            table.add_column(header, justify="right", no_wrap=True)
        for label, group in report[f"by_{dim}"].items():
            table.add_row(*_row(label, group))
        table.add_row(*_row("total", report["totals"]), style="bold")
        console.print(table)
    _render_alerts(console, report.get("alerts"))
    for note in report.get("notes", []):
        console.print(note, style="dim", highlight=False)


def _render_alerts(console: Any, alerts: dict[str, Any] | None) -> None:
    if not alerts or not alerts["open"]:
        return
    console.print(f"{alerts['open']} open alert(s) (`routecli alerts` lists them, `routecli alerts ack` clears):",
                  style="bold red", highlight=False)
    for alert in alerts["latest"]:
        console.print(f"  {alert['created_at'][:16]} {alert['severity']}: {alert['message']}", highlight=False)


@app.command()
def export(
    csv_: bool = typer.Option(False, "--csv", help="CSV (formula-like cells are neutralised)."),
    json_: bool = typer.Option(False, "--json", help="One JSON array."),
    jsonl: bool = typer.Option(False, "--jsonl", help="JSON Lines."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write here instead of stdout."),
    since: Optional[str] = typer.Option(None, "--since", help="From this time: 7d, 24h or an ISO date."),
    until: Optional[str] = typer.Option(None, "--until", help="Up to (not including) this time."),
    columns: Optional[list[str]] = typer.Option(
        None, "--columns", help="Only these columns, in this order (comma-separated or repeated)."),
    where: Optional[list[str]] = typer.Option(
        None, "--where", help="Only rows where field=value (repeat to AND; tag=NAME matches a tag; "
        "an empty value matches NULL)."),
    db: Optional[str] = typer.Option(None, "--db", envvar="ROUTECLI_DB", help="Ledger path or URL."),
) -> None:
    """Stream ledger rows as CSV, JSON or JSON Lines (no key or secret is ever in them)."""
    import functools

    from routecli.analytics.export import check_columns, iter_rows, parse_where, write_csv, write_json, write_jsonl

    chosen = [name for name, on in (("csv", csv_), ("json", json_), ("jsonl", jsonl)) if on]
    if len(chosen) > 1:
        raise UsageError("Pick one format: --csv, --json or --jsonl")
    kind = chosen[0] if chosen else "csv"
    writer = {"csv": write_csv, "json": write_json, "jsonl": write_jsonl}[kind]
    window = {"since": parse_when(since), "until": parse_when(until)}
    chosen_columns = check_columns(split_list(columns))
    if kind == "csv":  # the header names the chosen columns even when no row matches
        writer = functools.partial(write_csv, columns=chosen_columns)
    filters = parse_where(where or [])
    store = _open(db)
    try:
        rows = iter_rows(store, columns=chosen_columns, where=filters, json_text=kind == "csv", **window)
        if output is None:
            count = writer(rows, sys.stdout)
        else:
            with open(output, "w", encoding="utf-8", newline="") as fh:
                count = writer(rows, fh)
    except OSError as exc:
        raise UsageError(f"Cannot write {output}: {exc.strerror or exc}; check the path") from None
    finally:
        store.close()
    from routecli.cli.output import note

    note(f"exported {count} rows" + (f" to {output}" if output else ""))
