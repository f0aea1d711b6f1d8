"""stats, export, config and keys commands through the CLI, reading what `ask` wrote."""

import csv
import io
import json
import os
import stat
from datetime import datetime, timezone

from typer.testing import CliRunner

from routecli.cli import app
from routecli.cli.ledger import parse_when
from routecli.config import config_path, keys_path

runner = CliRunner()


def run(*args, input=None):
    return runner.invoke(app, list(args), input=input)


def test_stats_after_real_calls_shows_cost_and_savings(vendor):
    for prompt in ("What is the capital of France?", "Translate hello to Spanish"):
        assert run("ask", prompt).exit_code == 0
    assert run("ask", "--tier", "premium", "Prove it step by step").exit_code == 0
    assert run("ask", "--model", "openai:gpt-5.4-nano", "fail [[status=500]]").exit_code == 1
    report = json.loads(run("stats", "--json").stdout)
    totals = report["totals"]
    assert (totals["requests"], totals["ok"], totals["errors"]) == (4, 3, 1)
    assert set(report["by_tier"]) == {"cheap", "premium"}
    assert float(totals["cost_usd"]) > 0
    assert float(totals["savings"]["saved_usd"]) > 0 and totals["savings"]["rows"] == 3
    table = run("stats")
    assert table.exit_code == 0 and "premium" in table.stdout and "openai:gpt-5.4-nano" in table.stdout


def test_stats_since_filters(vendor):
    assert run("ask", "hello").exit_code == 0
    assert json.loads(run("stats", "--json", "--since", "1h").stdout)["totals"]["requests"] == 1
    future = json.loads(run("stats", "--json", "--since", "2999-01-01").stdout)
    assert future["totals"]["requests"] == 0
    bad = run("stats", "--since", "last tuesday")
    assert bad.exit_code == 2 and "7d, 24h" in bad.stderr


def test_parse_when():
    now = datetime(2026, 11, 22, 12, tzinfo=timezone.utc)
    assert parse_when("7d", now=now) == datetime(2026, 11, 15, 12, tzinfo=timezone.utc)
    assert parse_when("2026-11-01") == datetime(2026, 11, 1, tzinfo=timezone.utc)
    assert parse_when(None) is None


def test_export_formats_and_file(vendor, tmp_path):
    assert run("ask", "=HYPERLINK(\"http://evil\")").exit_code == 0
    assert run("ask", "hello").exit_code == 0
    as_csv = list(csv.DictReader(io.StringIO(run("export", "--csv").stdout)))
    assert len(as_csv) == 2 and as_csv[0]["prompt"].startswith("'=")  # formula neutralised
    lines = run("export", "--jsonl").stdout.splitlines()
    assert [json.loads(line)["status"] for line in lines] == ["ok", "ok"]
    assert float(json.loads(lines[0])["cost_usd"]) > 0
    out = tmp_path / "ledger.json"
    result = run("export", "--json", "-o", str(out))
    assert result.exit_code == 0 and "exported 2 rows" in result.stderr
    assert len(json.loads(out.read_text())) == 2
    both = run("export", "--csv", "--json")
    assert both.exit_code == 2 and "Pick one format" in both.stderr


def test_config_commands(isolated_home):
    assert run("config", "path").stdout.strip() == str(config_path())
    assert run("config", "init").exit_code == 0 and config_path().exists()
    again = run("config", "init")
    assert again.exit_code == 2 and "--force" in again.stderr
    assert run("config", "set", "routing.baseline", "openai:gpt-5.5").exit_code == 0
    shown = json.loads(run("config", "show", "--json").stdout)
    assert shown["routing"]["baseline"] == "openai:gpt-5.5"
    refused = run("config", "set", "providers.openai.kind", "grpc")
    assert refused.exit_code == 2 and "openai, anthropic, gemini" in refused.stderr
    no_such = run("config", "set", "providers.openai.pricing_provider", "acme")
    assert no_such.exit_code == 2 and "anthropic" in no_such.stderr


def test_keys_commands_never_print_the_key(isolated_home):
    saved = run("keys", "set", "anthropic", input="ak-secret-987654\n")
    assert saved.exit_code == 0, saved.output
    assert stat.S_IMODE(os.stat(keys_path()).st_mode) == 0o600
    listing = run("keys", "list")
    assert "anthropic\tkeys file" in listing.stdout and "ak-secret" not in listing.output
    assert run("keys", "set", "nobody", "--value", "x1234").exit_code == 2
    assert run("keys", "set", "openai", "--value", "has space").exit_code == 2
    assert run("keys", "remove", "anthropic").exit_code == 0
    assert "anthropic\tmissing" in run("keys", "list").stdout
    assert run("keys", "remove", "anthropic").exit_code == 2


def test_key_from_keys_file_is_used_for_the_call(vendor, monkeypatch):
    from conftest import VENDOR_KEY

    monkeypatch.delenv("OPENAI_API_KEY")
    assert run("keys", "set", "openai", "--value", VENDOR_KEY).exit_code == 0
    assert run("ask", "--model", "openai:gpt-5.4-nano", "hi").exit_code == 0
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    flagged = run("ask", "--model", "anthropic:claude-haiku-4-5", "--api-key", VENDOR_KEY, "hi")
    assert flagged.exit_code == 0, flagged.output


def test_help_lists_the_commands():
    result = run("--help")
    assert result.exit_code == 0
    for name in ("ask", "stats", "export", "config", "keys"):
        assert name in result.stdout
