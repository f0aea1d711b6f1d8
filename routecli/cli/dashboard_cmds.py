"""`routecli dashboard`: a live terminal view of the ledger, or (`--html`) one self-contained HTML report."""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, TextIO

import typer

from routecli.cli import app

_SPARKS = "▁▂▃▄▅▆▇█"
_STATUS_STYLE = {"ok": "green", "error": "red", "skipped": "yellow", "dry-run": "dim"}
_SEVERITY_STYLE = {"critical": "bold red", "error": "red", "warning": "yellow", "info": "cyan"}


@app.command()
def dashboard(
    html: Optional[Path] = typer.Option(None, "--html", help="Write one self-contained HTML report here and exit."),
    since: str = typer.Option("30d", "--since", help="With --html: from this time (7d, 24h or an ISO date)."),
    until: Optional[str] = typer.Option(None, "--until", help="With --html: up to this time."),
    once: bool = typer.Option(False, "--once", help="Print one snapshot and exit (also when stdout is not a terminal)."),
    interval: float = typer.Option(2.0, "--interval", help="Seconds between refreshes.", min=0.1),
    as_json: bool = typer.Option(False, "--json", help="Print one snapshot as JSON and exit."),
    db: Optional[str] = typer.Option(None, "--db", envvar="ROUTECLI_DB", help="Ledger path or URL."),
) -> None:
    """Spend today and this month against your budgets, savings, tier mix, requests per minute,
    latency, recent decisions and open alerts, refreshed live; q or Ctrl-C quits."""
    from routecli.config import db_location, load_config
    from routecli.store import open_store

    config = load_config()
    with open_store(db_location(db)) as store:
        if html is not None:
            return _write_html(store, config, html, since, until)
        from routecli.analytics.dashboard import snapshot

        def load() -> dict[str, Any]:
            return snapshot(store, config)

        if as_json:
            import json

            typer.echo(json.dumps(load(), indent=2))
            return
        if once or not sys.stdout.isatty():  # a pipe gets one frame, never a stream of redraws
            _console().print(render(load()))
            return
        try:
            run_live(load, _console(), interval, threading.Event())
        except KeyboardInterrupt:
            pass  # Ctrl-C is how a dashboard is left: no traceback, exit 0


def _write_html(store: Any, config: Any, path: Path, since: str, until: str | None) -> None:
    from routecli.analytics.report_html import write_report
    from routecli.when import parse_when
    from routecli.cli.output import note
    from routecli.errors import UsageError

    try:
        write_report(store, config, path, since=parse_when(since), until=parse_when(until))
    except OSError as exc:
        raise UsageError(f"Cannot write {path}: {exc.strerror or exc}; check the path") from None
    note(f"wrote {path}")


def _console() -> Any:
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 120)


def run_live(load: Callable[[], dict[str, Any]], console: Any, interval: float, stop: threading.Event,
             *, on_frame: Callable[[dict[str, Any]], None] | None = None, keys: TextIO | None = None) -> None:
    """Redraw from `load()` every `interval` seconds until `stop` is set (q sets it) or Ctrl-C."""
    from rich.live import Live

    snap = load()
    with quit_keys(stop, keys or sys.stdin), Live(render(snap, live=True), console=console, screen=console.is_terminal,
                                                  auto_refresh=False, redirect_stderr=False) as live:
        if on_frame:
            on_frame(snap)
        while not stop.wait(interval):
            snap = load()
            live.update(render(snap, live=True), refresh=True)
            if on_frame:
                on_frame(snap)


@contextmanager
def quit_keys(stop: threading.Event, stream: TextIO) -> Iterator[None]:
    """While inside, a background thread reads single keys (cbreak mode) and sets `stop` on q.

    Cbreak, not raw: Ctrl-C still raises KeyboardInterrupt in the main thread. The terminal's
    settings are restored on the way out, however it is left."""
    if not (hasattr(stream, "isatty") and stream.isatty()):
        yield
        return
    import select
    import termios
    import tty

    fd = stream.fileno()
    saved = termios.tcgetattr(fd)
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                key = os.read(fd, 1)
                if key in (b"q", b"Q", b"\x04", b""):  # q, Ctrl-D, or the terminal went away
                    stop.set()
                    return

    tty.setcbreak(fd)
    reader = threading.Thread(target=read, name="dashboard-keys", daemon=True)
    reader.start()
    try:
        yield
    finally:
        done.set()
        reader.join(1.0)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


# ---------------------------------------------------------------- rendering


def render(snap: dict[str, Any], *, live: bool = False) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    top = Table.grid(expand=True, padding=(0, 2))
    for _ in range(3):
        top.add_column(ratio=1)
    top.add_row(_spend(snap), _traffic(snap), _tiers(snap))
    stamp = snap["at"][11:19]
    footer = Text(f"updated {stamp} UTC" + (" · q or Ctrl-C quits" if live else ""), style="dim")
    return Group(top, _recent(snap), _alerts(snap), footer)


def _panel(title: str, body: Any) -> Any:
    from rich.panel import Panel

    return Panel(body, title=title, title_align="left", border_style="blue")


def _usd(text: str | None) -> str:
    from routecli.cli.ledger import usd

    return usd(text)


def _bar(share: float, width: int = 16) -> str:
    filled = max(0, min(width, round(share * width)))
    return "█" * filled + "░" * (width - filled)


def _budget_line(label: str, window: dict[str, Any]) -> Any:
    from rich.text import Text

    line = Text(f"{label:<6} {_usd(window['cost_usd'])}")
    if window["limit_usd"] is None:
        line.append("  no budget", style="dim")
        return line
    share = window["used_share"] or 0.0
    style = "red" if share >= 1 else "yellow" if share >= 0.8 else "green"
    line.append(f" of {_usd(window['limit_usd'])}  ")
    line.append(_bar(share), style=style)
    line.append(f" {share * 100:.0f}%", style=style)
    return line


def _spend(snap: dict[str, Any]) -> Any:
    from rich.text import Text

    spend = snap["spend"]
    lines = [_budget_line("today", spend["today"]), _budget_line("month", spend["month"])]
    if spend["total"]["limit_usd"] is not None:
        lines.append(_budget_line("total", spend["total"]))
    for label in ("today", "month"):
        window = spend[label]
        pct = "" if window["saved_pct"] is None else f" ({window['saved_pct']:.0f}%)"
        lines.append(Text(f"saved {label}: {_usd(window['saved_usd'])}{pct}", style="green"))
    return _panel("spend", Text("\n").join(lines))


def sparkline(values: list[int]) -> str:
    """One block per value, scaled to the largest; a quiet minute is the lowest block, not a gap."""
    top = max(values, default=0)
    levels = len(_SPARKS) - 1
    return "".join(_SPARKS[0] if v == 0 or not top else _SPARKS[max(1, round(v / top * levels))] for v in values)


def _traffic(snap: dict[str, Any]) -> Any:
    from rich.text import Text

    rpm, day = snap["rpm"], snap["last_24h"]
    per_minute = rpm["per_minute"]
    average = sum(per_minute[:-1]) / max(1, len(per_minute) - 1)
    latency = day["latency_ms"]
    seconds = " · ".join(
        f"{name} {latency[name] / 1000:.2f}s" for name in ("p50", "p95") if latency.get(name) is not None
    ) or "no answers yet"
    error_pct = f" ({day['errors'] * 100 / day['attempts']:.1f}%)" if day["attempts"] else ""
    body = Text.assemble(
        f"requests/min {rpm['last_minute']}  (hour avg {average:.1f})\n",
        (sparkline(per_minute[-30:]), "cyan"),
        f"\nlatency 24 h: {seconds}\n",
        (f"errors 24 h: {day['errors']} of {day['attempts']}{error_pct}", "red" if day["errors"] else "dim"),
    )
    return _panel("traffic", body)


def _tiers(snap: dict[str, Any]) -> Any:
    from rich.text import Text

    tiers = snap["last_24h"]["tiers"]
    total = sum(tiers.values())
    if not total:
        return _panel("tier mix, 24 h", Text("no requests yet", style="dim"))
    width = max(len(name) for name in tiers)
    lines = [Text(f"{name:<{width}} {_bar(n / total, 12)} {n:>5} {n * 100 / total:4.0f}%")
             for name, n in sorted(tiers.items(), key=lambda item: -item[1])]
    return _panel("tier mix, 24 h", Text("\n").join(lines))


def _recent(snap: dict[str, Any]) -> Any:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, expand=True, pad_edge=False, title="recent decisions", title_justify="left")
    show_variant = any(row["ab_variant"] for row in snap["recent"])
    for header in ("time", "tier", "model", "status", "cost", "latency") + (("A/B",) if show_variant else ()):
        table.add_column(header, no_wrap=True, justify="right" if header in ("cost", "latency") else "left")
    table.add_column("why", overflow="ellipsis", no_wrap=True, ratio=1)
    for row in snap["recent"]:
        latency = "-" if row["latency_ms"] is None else f"{row['latency_ms'] / 1000:.2f}s"
        status = row["status"] + ("" if row["step"] in (None, "first") else f" ({row['step']})")
        # Text, not markup strings: model names and reasons may hold "[" that Rich would parse
        cells = [Text(row["at"][11:19]), Text(row["tier"]), Text(row["model"]),
                 Text(status, style=_STATUS_STYLE.get(row["status"], "")), Text(_usd(row["cost_usd"])), Text(latency)]
        if show_variant:
            cells.append(Text(row["ab_variant"] or ""))
        table.add_row(*cells, Text(row["why"]))
    if not snap["recent"]:
        table.add_row("-", "", "", "[dim]nothing recorded yet", "", "", *([""] if show_variant else []), "")
    return table


def _alerts(snap: dict[str, Any]) -> Any:
    from rich.text import Text

    alerts = snap["alerts"]
    if not alerts["open"]:
        return Text("no open alerts", style="dim")
    lines = [Text(f"{alerts['open']} open alert(s)", style="bold red")]
    for alert in alerts["latest"]:
        style = _SEVERITY_STYLE.get(alert["severity"], "")
        # Text.assemble parses no markup: an alert's message is shown as written
        lines.append(Text.assemble((f"{alert['severity']:<8}", style), f" {alert['kind']}: {alert['message']}"))
    return _panel("alerts", Text("\n").join(lines))
