"""`routecli stats` and `routecli export`: read the ledger. Data on stdout, messages on stderr."""

from __future__ import annotations

import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Optional

import typer

from routecli.cli import app
from routecli.errors import UsageError

_AGO = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str | None, *, now: datetime | None = None) -> datetime | None:
    """`7d`, `24h`, `30m`, `2w` ago, or an ISO date/time (UTC when no offset is given)."""
    if text is None:
        return None
    now = now or datetime.now(timezone.utc)
    match = _AGO.match(text.strip().lower())
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"Cannot read time {text!r}: use e.g. 7d, 24h, 30m or 2026-11-01") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _open(db: str | None):
    from routecli.config import db_location
    from routecli.store import open_store

    return open_store(db_location(db))


@app.command()
def stats(
    since: Optional[str] = typer.Option(None, "--since", help="From this time: 7d, 24h or an ISO date."),
    until: Optional[str] = typer.Option(None, "--until", help="Up to (not including) this time."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    db: Optional[str] = typer.Option(None, "--db", envvar="ROUTECLI_DB", help="Ledger path or URL."),
) -> None:
    """Requests, tokens, cost, and what routing saved against the baseline model."""
    import json

    from routecli.analytics.stats import compute_stats

    store = _open(db)
    try:
        report = compute_stats(store, since=parse_when(since), until=parse_when(until))
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


def _row(label: str, group: dict[str, Any]) -> list[str]:
    savings = group["savings"]
    latency = group["latency_ms"]["p50"]
    unpriced = f" +{group['cost_unknown']} unpriced" if group["cost_unknown"] else ""
    return [
        label,
        str(group["ok"]),
        str(group["errors"]),
        str(group["dry_runs"]),
        f"{group['input_tokens']:,}",
        f"{group['output_tokens']:,}",
        usd(group["cost_usd"]) + unpriced,
        usd(savings["baseline_cost_usd"]),
        usd(savings["saved_usd"]),
        "-" if savings["saved_pct"] is None else f"{float(savings['saved_pct']):.1f}%",
        "-" if latency is None else f"{latency / 1000:.2f}s",
    ]


def _headline(report: dict[str, Any]) -> str:
    totals = report["totals"]
    savings = totals["savings"]
    if not savings["rows"]:
        return f"{totals['ok']} answered calls; nothing priced against the baseline yet"
    pct = "" if savings["saved_pct"] is None else f" ({float(savings['saved_pct']):.1f}%)"
    return (
        f"{totals['ok']} answered calls cost {usd(totals['cost_usd'])}; routing saved "
        f"{usd(savings['saved_usd'])}{pct} against the baseline model"
    )


def _render_stats(report: dict[str, Any]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    # in a pipe there is no terminal width to respect; never truncate the figures
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(_headline(report), highlight=False)
    headers = ["ok", "errors", "dry runs", "tokens in", "tokens out", "cost", "baseline", "saved", "saved %", "p50"]
    for title, groups in (("tier", report["by_tier"]), ("model", report["by_model"])):
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column(title, no_wrap=True)
        for header in headers:
            table.add_column(header, justify="right", no_wrap=True)
        for label, group in groups.items():
            table.add_row(*_row(label, group))
        table.add_row(*_row("total", report["totals"]), style="bold")
        console.print(table)
    for note in report.get("notes", []):
        console.print(note, style="dim", highlight=False)


@app.command()
def export(
    csv_: bool = typer.Option(False, "--csv", help="CSV (formula-like cells are neutralised)."),
    json_: bool = typer.Option(False, "--json", help="One JSON array."),
    jsonl: bool = typer.Option(False, "--jsonl", help="JSON Lines."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write here instead of stdout."),
    since: Optional[str] = typer.Option(None, "--since", help="From this time: 7d, 24h or an ISO date."),
    until: Optional[str] = typer.Option(None, "--until", help="Up to (not including) this time."),
    db: Optional[str] = typer.Option(None, "--db", envvar="ROUTECLI_DB", help="Ledger path or URL."),
) -> None:
    """Stream every ledger row (no key or secret is ever in it)."""
    from routecli.analytics.export import iter_rows, write_csv, write_json, write_jsonl

    chosen = [name for name, on in (("csv", csv_), ("json", json_), ("jsonl", jsonl)) if on]
    if len(chosen) > 1:
        raise UsageError("Pick one format: --csv, --json or --jsonl")
    writer = {"csv": write_csv, "json": write_json, "jsonl": write_jsonl}[chosen[0] if chosen else "csv"]
    window = {"since": parse_when(since), "until": parse_when(until)}
    store = _open(db)
    try:
        rows = iter_rows(store, **window)
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
