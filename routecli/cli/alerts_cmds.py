"""`routecli alerts`: check the rules, list open alerts, acknowledge them. Data on stdout."""

from __future__ import annotations

import sys
from typing import Any, Optional

import typer

from routecli.errors import UsageError

alerts_app = typer.Typer(
    help="Alerts from the rules in [alerts]: check them, list the open ones, acknowledge them.",
    invoke_without_command=True,
    no_args_is_help=False,
)

_DB = typer.Option(None, "--db", envvar="ROUTECLI_DB", help="Ledger path or URL.")
_JSON = typer.Option(False, "--json", help="Print JSON.")


@alerts_app.callback()
def alerts(
    ctx: typer.Context,
    show_all: bool = typer.Option(False, "--all", help="Acknowledged alerts too."),
    as_json: bool = _JSON,
    db: Optional[str] = _DB,
) -> None:
    """Check the rules, then list open alerts (newest first)."""
    if ctx.invoked_subcommand is not None:
        return
    from routecli.analytics.alerts import check_alerts, list_alerts

    store, config = _open(db)
    try:
        check_alerts(store, config)
        found = list_alerts(store, include_acknowledged=show_all)
    finally:
        store.close()
    _show(found, as_json, empty="no alerts" if show_all else "no open alerts")


@alerts_app.command("check")
def check(as_json: bool = _JSON, db: Optional[str] = _DB) -> None:
    """Evaluate every rule now and print the alerts it raised (each fires once per subject a day)."""
    from routecli.analytics.alerts import check_alerts

    store, config = _open(db)
    try:
        raised = check_alerts(store, config)
    finally:
        store.close()
    _show(raised, as_json, empty="no new alerts")


@alerts_app.command("ack")
def ack(
    ids: Optional[list[str]] = typer.Argument(None, help="Alert ids (from `routecli alerts`)."),
    every: bool = typer.Option(False, "--all", help="Every open alert."),
    db: Optional[str] = _DB,
) -> None:
    """Acknowledge alerts: they leave the open list (and `stats`), and are kept with the time."""
    from routecli.analytics.alerts import acknowledge
    from routecli.cli.output import note

    if bool(ids) == every:
        raise UsageError("Give alert ids or --all (not both): `routecli alerts ack ID...` or `routecli alerts ack --all`")
    store, _config = _open(db, with_config=False)
    try:
        marked = acknowledge(store, None if every else ids)
    finally:
        store.close()
    missing = sorted(set(ids or []) - set(marked))
    note(f"acknowledged {len(marked)} alert(s)")
    if missing:
        raise UsageError(f"No open alert with id {', '.join(missing)}; `routecli alerts --all` lists them")


def _open(db: str | None, *, with_config: bool = True) -> tuple[Any, Any]:
    from routecli.config import db_location, load_config
    from routecli.store import open_store

    config = load_config() if with_config else None
    return open_store(db_location(db)), config


def _show(found: list[Any], as_json: bool, *, empty: str) -> None:
    if as_json:
        import json

        typer.echo(json.dumps([alert.to_json() for alert in found], indent=2))
        return
    if not found:
        from routecli.cli.output import note

        note(empty)
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for header in ("id", "when (UTC)", "severity", "kind", "message", "acknowledged"):
        table.add_column(header, no_wrap=header != "message")
    for alert in found:
        acked = alert.acknowledged_at[:16].replace("T", " ") if alert.acknowledged_at else ""
        style = "red" if alert.severity == "critical" and not acked else None
        table.add_row(alert.id, alert.created_at[:16].replace("T", " "), alert.severity, alert.kind,
                      alert.message, acked, style=style)
    Console(width=None if sys.stdout.isatty() else 200).print(table)
