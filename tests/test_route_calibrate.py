"""`routecli route` decides without calling; `routecli calibrate` sets thresholds from traffic."""

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from routecli.cli import app
from routecli.config import load_config
from routecli.errors import UsageError
from routecli.routing.calibrate import achieved_shares, parse_shares, shares_from_strong, thresholds_for_shares

runner = CliRunner()
SAMPLES = Path(__file__).resolve().parent.parent / "sample_prompts"


def run(*args, input=None):
    return runner.invoke(app, list(args), input=input)


def test_route_a_file_as_json_lines_calls_and_records_nothing(vendor):
    import fakevendor

    result = run("route", "--json", "--file", str(SAMPLES / "hard.jsonl"))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["hard-1", "hard-2", "hard-3", "hard-4"]
    assert all(r["phase"] == load_config().classifier and 0 <= r["score"] <= 1 for r in rows)
    assert fakevendor.requests_log(vendor) == []
    assert not (Path(load_config().source_path).parent / "routecli.db").exists()


def test_route_one_prompt_as_a_table():
    result = run("route", "Prove that the algorithm terminates, step by step, and derive its time complexity")
    assert result.exit_code == 0 and "premium" in result.stdout and "reasoning words" in result.stdout


def test_route_reports_bad_lines_and_goes_on():
    lines = '{"id": "a", "prompt": "hi"}\n{oops\n{"id": "c", "prompt": "hi", "tier": "gold"}\n{"id": "d", "prompt": "yo"}\n'
    result = run("route", "--json", "-f", "-", input=lines)
    assert result.exit_code == 1
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in rows if "error" not in r] == ["a", "d"]
    assert "line 2: is not valid JSON" in result.stderr and "line 3: Unknown tier 'gold'" in result.stderr


def test_route_needs_exactly_one_input():
    assert run("route").exit_code == 2
    assert run("route", "hi", "-f", "x.jsonl").exit_code == 2
    missing = run("route", "-f", "/no/such.jsonl")
    assert missing.exit_code == 2 and "Cannot read /no/such.jsonl" in missing.stderr


def test_thresholds_hit_the_asked_shares():
    rng = random.Random(7)
    scores = [rng.random() for _ in range(1000)]
    tiers = ("local", "cheap", "standard", "premium")
    shares = parse_shares("local=0.4,cheap=0.3,standard=0.2,premium=0.1", tiers)
    thresholds = thresholds_for_shares(scores, tiers, shares)
    got = achieved_shares(scores, tiers, thresholds)
    assert all(abs(got[t] - shares[t]) < 0.01 for t in tiers)
    assert list(thresholds.values()) == sorted(thresholds.values())


def test_strong_share_and_edge_cases():
    tiers = ("cheap", "standard", "premium")
    assert shares_from_strong(tiers, 0.3) == pytest.approx({"cheap": 0.35, "standard": 0.35, "premium": 0.3})
    everything = thresholds_for_shares([0.5] * 20, tiers, {"cheap": 0.0, "standard": 0.0, "premium": 1.0})
    assert 0 < everything["standard"] < everything["premium"] <= 0.5
    nothing = thresholds_for_shares([0.2] * 20, tiers, {"cheap": 1.0, "standard": 0.0, "premium": 0.0})
    assert nothing["premium"] <= 1.0 and nothing["standard"] < nothing["premium"]
    for bad in ("cheap=0.5,standard=0.5", "cheap=0.5,standard=0.5,premium=0.5", "cheap=x,standard=0.5,premium=0.5"):
        with pytest.raises(UsageError):
            parse_shares(bad, tiers)
    with pytest.raises(UsageError, match="at least 10"):
        thresholds_for_shares([0.1] * 3, tiers, shares_from_strong(tiers, 0.3))


def test_calibrate_on_a_file_writes_thresholds(tmp_path):
    prompts = tmp_path / "mine.jsonl"
    texts = [f"What is the capital of country {i}?" for i in range(30)]
    texts += [f"Prove step by step that algorithm {i} is correct and analyze its complexity" for i in range(10)]
    prompts.write_text("\n".join(json.dumps({"prompt": t}) for t in texts))
    result = run("calibrate", "--strong-share", "0.25", "--file", str(prompts))
    assert result.exit_code == 0, result.output
    config = load_config()
    assert config.thresholds["premium"] > config.thresholds["standard"]
    assert "premium" in result.stdout and "gets 25%" in result.stdout


def test_calibrate_from_the_ledger(vendor):
    for i in range(12):
        assert run("ask", "--dry-run", f"question number {i} about {'proofs step by step' if i % 3 == 0 else 'capitals'}").exit_code == 0
    result = run("calibrate", "--shares", "cheap=0.5,standard=0.25,premium=0.25", "--from-log", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "calibrated on 12 prompts" in result.stderr and "nothing written" in result.stderr


def test_calibrate_refuses_unclear_requests():
    assert run("calibrate", "--strong-share", "0.3").exit_code == 2  # no data source
    assert run("calibrate", "--from-log", "--strong-share", "1.5").exit_code == 2
    empty = run("calibrate", "--from-log", "--strong-share", "0.3")
    assert empty.exit_code == 2 and "no prompt text" in empty.stderr
