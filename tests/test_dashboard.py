"""`routecli dashboard`: the snapshot's figures, its rendering, live refresh while another process
writes, and leaving it with q or Ctrl-C from a real terminal (a pty)."""

from __future__ import annotations

import io
import json
import os
import select
import signal
import subprocess
import sys
import termios
import textwrap
import threading
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from routecli.analytics.dashboard import MINUTES, budget_limits, snapshot
from routecli.cli import app
from routecli.cli.dashboard_cmds import render, run_live, sparkline
from routecli.config import db_location
from routecli.store import Attempt, utcnow

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent


def row(**fields) -> Attempt:
    values = dict(source="ask", prompt_hash="h", classifier="rules", classifier_version="1", score=0.2,
                  tier="cheap", provider="openai", model="gpt-5.4-nano", phase="rules", status="ok",
                  latency_ms=500.0, cost_micros=1000, baseline_cost_micros=4000)
    values.update(fields)
    return Attempt(**values)


def _alert(store, message, acknowledged=False):
    stamp = utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO alerts VALUES (:id, :at, 'budget', 'warning', :m, '{}', NULL, :ack)"),
                     {"id": message, "at": stamp, "m": message, "ack": stamp if acknowledged else None})


def test_snapshot_figures(store):
    now = utcnow().replace(day=15, hour=12, minute=30, second=45)  # mid-month, mid-day, mid-minute
    last_month = now.replace(day=1) - timedelta(days=2)
    store.record(
        row(created_at=now - timedelta(seconds=20)),
        row(created_at=now - timedelta(minutes=5), tier="premium", model="gpt-5.4", cost_micros=30_000,
            baseline_cost_micros=30_000, latency_ms=2500.0),
        row(created_at=now - timedelta(minutes=5, seconds=1), status="error", cost_micros=None,
            baseline_cost_micros=None, error_kind="timeout"),
        row(created_at=now - timedelta(hours=12, minutes=31), cost_micros=2_000, baseline_cost_micros=None),  # yesterday
        row(created_at=last_month, cost_micros=500_000),
    )
    _alert(store, "spent 80% of the daily budget")
    _alert(store, "old news", acknowledged=True)
    config = SimpleNamespace(guards=SimpleNamespace(budgets=SimpleNamespace(
        limits=SimpleNamespace(daily=Decimal("0.05"), monthly=None, total=Decimal("1")))))
    snap = snapshot(store, config, now=now)
    spend = snap["spend"]
    assert (spend["today"]["cost_usd"], spend["today"]["limit_usd"], spend["today"]["used_share"]) == \
        ("0.031000", "0.05", 0.62)
    assert spend["today"]["saved_usd"] == "0.003000" and spend["today"]["saved_pct"] == 8.8  # 3000 of 34000
    assert spend["month"]["limit_usd"] is None  # shown as "no budget"
    assert spend["month"]["cost_usd"] == "0.033000"
    assert spend["total"]["cost_usd"] == "0.533000" and spend["total"]["used_share"] == 0.533
    day = snap["last_24h"]
    assert (day["requests"], day["errors"]) == (4, 1) and day["tiers"] == {"cheap": 3, "premium": 1}
    assert snap["rpm"]["last_minute"] == 1 and len(snap["rpm"]["per_minute"]) == MINUTES
    assert snap["rpm"]["per_minute"][-1] == 1 and snap["rpm"]["per_minute"][-6] == 2
    assert [r["status"] for r in snap["recent"][:3]] == ["ok", "ok", "error"]  # newest first
    assert snap["alerts"]["open"] == 1 and snap["alerts"]["latest"][0]["message"] == "spent 80% of the daily budget"


def test_budget_limits_from_either_config_shape():
    assert budget_limits(None) == {}
    assert budget_limits(SimpleNamespace(budgets={"daily": 2.5})) == {"daily": Decimal("2.5")}
    from routecli.config import load_config

    assert budget_limits(load_config()) == {}  # the defaults set no limit


def test_rendering_shows_the_figures_and_keeps_brackets_literal(store):
    store.record(row(reasons=["asked for [bold]code[/bold]"], model="m[1]"))
    console_file = io.StringIO()
    from rich.console import Console

    Console(file=console_file, width=140, color_system=None).print(render(snapshot(store, None)))
    shown = console_file.getvalue()
    for expected in ("no budget", "openai:m[1]", "asked for [bold]code[/bold]", "no open alerts", "requests/min 1"):
        assert expected in shown, expected
    assert "q or Ctrl-C quits" not in shown  # a single frame says nothing about keys
    assert sparkline([0, 1, 4, 8]) == "▁▂▅█" and sparkline([0, 0]) == "▁▁"


def test_once_json_and_pipes_print_one_snapshot(store):
    store.record(row())
    piped = runner.invoke(app, ["dashboard"])  # CliRunner's stdout is not a terminal
    assert piped.exit_code == 0 and "openai:gpt-5.4-nano" in piped.stdout and "\x1b[?1049h" not in piped.stdout
    assert runner.invoke(app, ["dashboard", "--once"]).stdout.count("recent decisions") == 1
    data = json.loads(runner.invoke(app, ["dashboard", "--json"]).stdout)
    assert data["last_24h"]["requests"] == 1


WRITER = textwrap.dedent("""
    import sys, time
    from routecli.store import Attempt, open_store
    store = open_store(sys.argv[1])
    for i in range(int(sys.argv[2])):
        store.record(Attempt(source="batch", prompt_hash=str(i), classifier="rules", classifier_version="1",
                             score=0.1, tier="cheap", provider="openai", model="gpt-5.4-nano", phase="rules",
                             status="ok", cost_micros=10, latency_ms=100.0))
        time.sleep(0.03)
""")


def test_live_view_refreshes_while_another_process_writes(store):
    from rich.console import Console

    total, seen, stop = 25, [], threading.Event()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, db_location(), str(total)], cwd=ROOT)
    deadline = threading.Timer(60, stop.set)  # never hang the suite
    deadline.start()

    def on_frame(snap):
        seen.append(snap["last_24h"]["requests"])
        if seen[-1] == total:
            stop.set()

    output = io.StringIO()
    try:
        run_live(lambda: snapshot(store, None), Console(file=output, force_terminal=True, width=120), 0.02, stop,
                 on_frame=on_frame, keys=io.StringIO())
    finally:
        deadline.cancel()
        assert writer.wait(timeout=30) == 0
    assert seen[-1] == total and seen == sorted(seen)
    assert len([n for n in set(seen) if 0 < n < total]) >= 3  # it redrew mid-write, not just at the end
    assert "q or Ctrl-C quits" in output.getvalue()


def _spawn_in_pty(tmp_path):
    import fcntl
    import struct

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen([sys.executable, "-m", "routecli", "dashboard", "--interval", "0.2"],
                               stdin=slave, stdout=slave, stderr=subprocess.PIPE, cwd=ROOT)
    screen = bytearray()

    def drain():  # keep reading, or the child blocks once the pty's buffer is full
        while True:
            try:
                ready, _, _ = select.select([master], [], [], 0.1)
                if ready:
                    screen.extend(os.read(master, 65536))
            except OSError:
                return
            if process.poll() is not None and not ready:
                return

    threading.Thread(target=drain, daemon=True).start()
    deadline = time.monotonic() + 30
    while b"q or Ctrl-C quits" not in screen and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b"q or Ctrl-C quits" in screen, bytes(screen[-500:])
    return process, master, slave, screen


def _canonical(fd) -> bool:
    return bool(termios.tcgetattr(fd)[3] & termios.ICANON)


@pytest.mark.parametrize("how", ["q", "ctrl-c"])
def test_live_dashboard_in_a_terminal_quits_cleanly(store, tmp_path, how):
    store.record(row())
    process, master, slave, screen = _spawn_in_pty(tmp_path)
    try:
        assert not _canonical(slave)  # cbreak: single keys reach the dashboard
        if how == "q":
            os.write(master, b"q")
        else:
            process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
        stderr = process.stderr.read().decode()
        assert "Traceback" not in stderr, stderr
        assert _canonical(slave)  # the terminal is given back as it was
        deadline = time.monotonic() + 5  # the drain thread may still be reading the last bytes
        while b"\x1b[?1049l" not in screen and time.monotonic() < deadline:
            time.sleep(0.05)
        assert b"\x1b[?1049l" in screen  # it left the alternate screen
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)
        os.close(slave)
