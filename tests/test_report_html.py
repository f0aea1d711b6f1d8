"""`routecli dashboard --html`: the report's figures, that it is one self-contained file, and that it
loads in a real headless Chromium with no console error and charts that actually paint."""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from cdp import Browser, console_errors, find_chromium, png_pixels
from routecli.analytics.ab import ABTest, parse_strategy
from routecli.analytics.ab_store import add_feedback, start_test
from routecli.analytics.report_html import report_data
from routecli.analytics.report_page import render_html
from routecli.analytics.svgcharts import PALETTE, nice_ticks
from routecli.cli import app
from routecli.config import load_config
from routecli.store import Attempt, utcnow

# Read at import: the autouse isolated_home fixture clears every ROUTECLI_* variable for each test.
REQUIRE_BROWSER = os.environ.get("ROUTECLI_REQUIRE_BROWSER") == "1"  # .ci/run sets it after installing chromium
MODELS = {"cheap": "gpt-5.4-nano", "standard": "gpt-5.4-mini", "premium": "gpt-5.4"}
BLUE = tuple(int(PALETTE[0][i:i + 2], 16) for i in (1, 3, 5))


def seed(store, days=6, per_day=30):
    rng, rows = random.Random(7), []
    noon = utcnow().replace(hour=12, minute=0) - timedelta(days=1)  # rows fall between 02:00 and 12:00 of their day
    start_test(store, ABTest("cheap-first", (("a", parse_strategy("rules")), ("b", parse_strategy("learned@0.5"))),
                             (50, 50), "prompt"))
    for i in range(days * per_day):
        tier = rng.choice(["cheap", "cheap", "standard", "premium"])
        ok = rng.random() > 0.06
        rows.append(Attempt(
            created_at=noon - timedelta(days=i // per_day, minutes=rng.uniform(0, 600)), source="ask",
            prompt_hash=str(i), classifier="rules", classifier_version="1", score=0.3, tier=tier, provider="openai",
            model=MODELS[tier], phase="rules", status="ok" if ok else "error", error_kind=None if ok else "timeout",
            latency_ms=rng.uniform(300, 2000) * (3 if tier == "premium" else 1),
            cost_micros={"cheap": 20, "standard": 200, "premium": 2000}[tier] if ok else None,
            baseline_cost_micros=2000 if ok else None, ab_test="cheap-first", ab_variant=rng.choice("ab")))
    rows.append(Attempt(source="ask", prompt_hash="x", classifier="rules", classifier_version="1", score=0.1,
                        tier="cheap", provider="local", model="<b>odd</b>", phase="rules", status="ok",
                        latency_ms=50.0, cost_micros=0, baseline_cost_micros=2000))
    store.record(*rows)
    add_feedback(store, rows[0].id, 0.9)
    return rows


def test_report_figures_add_up(store):
    rows = seed(store)
    data = report_data(store, load_config(), since=utcnow() - timedelta(days=30), until=None)
    series = data["series"]
    assert not series["hourly"] and len(series["buckets"]) == 7  # six days before today, and today
    assert list(series["tiers"]) == ["cheap", "standard", "premium"]  # routing order, not alphabetical
    assert sum(map(sum, series["tiers"].values())) == data["totals"]["requests"] == len(rows)
    assert sum(series["cost"]) == sum(r.cost_micros or 0 for r in rows)
    assert sum(series["baseline_cost"]) == sum(r.baseline_cost_micros or 0 for r in rows)
    for item in data["latency"]:
        assert item["quantiles_ms"] == sorted(item["quantiles_ms"]) and item["n"] > 0
    errors = {e["model"]: e for e in data["errors"]}
    assert sum(e["errors"] for e in errors.values()) == sum(r.status == "error" for r in rows)
    assert [r["test"]["name"] for r in data["ab"]] == ["cheap-first"]
    assert sum(v["requests"] for v in data["ab"][0]["variants"].values()) == len(rows) - 1
    hourly = report_data(store, load_config(), since=utcnow() - timedelta(hours=24), until=None)["series"]
    assert hourly["hourly"] and 1 <= len(hourly["buckets"]) <= 25


def test_html_is_one_self_contained_file(store):
    seed(store)
    page = render_html(report_data(store, load_config(), since=None, until=None))
    lowered = page.lower()
    for outside in ("<script", "<link", "http://", "https://", "url(", "@import", "src="):
        assert outside not in lowered, outside  # nothing is fetched, nothing runs
    assert page.count('<svg class="chart"') == 5
    assert "&lt;b&gt;odd&lt;/b&gt;" in page and "<b>odd</b>" not in page
    assert "cheap-first" in page and "learned@0.5" in page


def test_empty_ledger_still_makes_a_page(store):
    page = render_html(report_data(store, load_config(), since=None, until=None))
    assert page.count("no data in this window") == 4 and "No A/B tests yet" in page


def test_command_writes_the_file(store, tmp_path):
    seed(store)
    target = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["dashboard", "--html", str(target), "--since", "7d"])
    assert result.exit_code == 0 and f"wrote {target}" in result.stderr
    assert target.read_text().startswith("<!DOCTYPE html>")
    bad = CliRunner().invoke(app, ["dashboard", "--html", str(tmp_path / "missing" / "r.html")])
    assert bad.exit_code == 2 and "Cannot write" in bad.stderr


def test_nice_ticks():
    assert nice_ticks(0.0013) == pytest.approx([0, 0.0005, 0.001, 0.0015])
    assert nice_ticks(97) == [0, 20, 40, 60, 80, 100]
    assert nice_ticks(0) == [0.0, 1.0]


# ---------------------------------------------------------------- a real browser


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    binary = find_chromium()
    if binary is None:
        if REQUIRE_BROWSER:
            pytest.fail("chromium is missing but CI requires it: .ci/run installs it with apt-get install -y chromium")
        pytest.skip("chromium is not installed (apt-get install -y chromium); CI runs this test")
    opened = Browser(binary, tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield opened
    finally:
        opened.close()


def test_the_error_check_catches_errors(browser, tmp_path):
    """The control: the same check, on a page that does fail, must say so."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><p>x</p><script>console.error('drawn wrong');"
                   "throw new Error('chart exploded')</script>")
    errors = browser.open(bad.as_uri())["errors"]
    assert any("chart exploded" in e for e in errors) and any("drawn wrong" in e for e in errors), errors


def test_report_loads_without_errors_and_its_charts_paint(browser, store, tmp_path):
    seed(store)
    target = tmp_path / "report.html"
    assert CliRunner().invoke(app, ["dashboard", "--html", str(target)]).exit_code == 0
    loaded = browser.open(target.as_uri())
    assert loaded["errors"] == [], loaded["errors"]
    boxes = browser.evaluate("JSON.stringify([...document.querySelectorAll('svg.chart')].map(s => {"
                             "const r = s.getBoundingClientRect(); return [r.width, r.height,"
                             " s.querySelectorAll('rect, polyline, circle, line').length]}))")
    boxes = json.loads(boxes)
    assert len(boxes) == 5 and all(w > 300 and h > 80 and marks > 5 for w, h, marks in boxes), boxes
    width, height, pixels = png_pixels(loaded["png"])
    assert (width, height) == browser.size
    colours = Counter(pixels)
    background, _ = colours.most_common(1)[0]
    assert len(colours) > 100  # text, charts, antialiasing: not a blank page
    assert sum(n for c, n in colours.items() if c != background) > 0.2 * len(pixels)
    assert colours[BLUE] > 2000  # the cheap tier's columns and the boxes really were painted in it
    print(f"\nbrowser: {len(boxes)} charts, {len(colours)} colours, {colours[BLUE]} px of {PALETTE[0]}, "
          f"console errors: {loaded['errors']}")


def test_console_errors_reads_devtools_events():
    events = [{"method": "Log.entryAdded", "params": {"entry": {"level": "error", "text": "net::ERR_FAILED"}}},
              {"method": "Log.entryAdded", "params": {"entry": {"level": "info", "text": "fine"}}},
              {"method": "Runtime.consoleAPICalled", "params": {"type": "log", "args": [{"value": "hi"}]}}]
    assert console_errors(events) == ["log: net::ERR_FAILED"]
