"""`routecli insights`: each rule fires on the evidence it needs, with its numbers and command, and not without."""

import json

from typer.testing import CliRunner

from routecli.cli import app
from routecli.config import db_location
from routecli.store import open_store

runner = CliRunner()


def fill(rows):
    """Ledger rows straight through the store (what ask/batch would have written)."""
    from routecli.store import Attempt, new_id, sha256_text

    base = dict(source="ask", classifier="learned", classifier_version="t", score=0.5, phase="learned",
                status="ok", cost_micros=100, baseline_cost_micros=1000)
    with open_store(db_location()) as store:
        attempts = []
        for fields in rows:
            row = {**base, **fields}
            row.setdefault("prompt_hash", sha256_text(row.pop("prompt", new_id())))
            attempts.append(Attempt(**row))
        store.record(*attempts)


def found():
    result = runner.invoke(app, ["insights", "--json"])
    assert result.exit_code == 0, result.output
    return {item["kind"]: item for item in json.loads(result.stdout)["insights"]}


def test_an_empty_ledger_has_no_suggestions():
    assert found() == {}
    assert "no suggestions" in runner.invoke(app, ["insights"]).stderr


def test_a_failing_model_is_moved_to_the_end_of_its_tier():
    fill([{"tier": "cheap", "provider": "openai", "model": "gpt-5.4-nano", "status": "error" if i % 3 == 0 else "ok",
           "error_kind": "server" if i % 3 == 0 else None} for i in range(30)])
    item = found()["failing_model"]
    assert item["evidence"]["calls"] == 30 and item["evidence"]["failed"] == 10
    assert item["command"].startswith("routecli config set tiers.cheap.models ")
    assert item["command"].endswith(",openai:gpt-5.4-nano")
    assert runner.invoke(app, item["command"].split()[1:]).exit_code == 0  # the command works as printed


def test_drift_from_the_calibrated_share_suggests_recalibrating(isolated_home):
    fill([{"tier": "premium" if i < 30 else "cheap", "provider": "openai", "model": "gpt-5.4-nano"} for i in range(60)])
    assert "calibration_drift" not in found()  # no target: nothing to drift from
    (isolated_home / "config.toml").write_text("[routing.target_shares]\npremium = 0.2\n")
    item = found()["calibration_drift"]
    assert item["evidence"]["share"] == 0.5 and item["command"] == "routecli calibrate --from-log --strong-share 0.2"


def test_an_agent_that_keeps_escalating_gets_a_minimum_tier():
    rows = []
    for i in range(12):
        rows.append({"id": f"R{i:02d}", "request_id": f"R{i:02d}", "agent": "ci", "tier": "cheap",
                     "provider": "openai", "model": "gpt-5.4-nano"})
        if i < 9:
            rows.append({"request_id": f"R{i:02d}", "agent": "ci", "tier": "standard", "step": "escalation",
                         "provider": "openai", "model": "gpt-5.4-mini"})
    fill(rows)
    item = found()["escalating_agent"]
    assert item["evidence"] == {"agent": "ci", "requests": 12, "escalated": 9, "usual_tier": "cheap"}
    assert item["command"] == "routecli config set policies.agent_min_tier.ci standard"


def test_repeated_prompts_show_what_the_cache_would_have_saved():
    fill([{"prompt": "same", "tier": "cheap", "provider": "openai", "model": "gpt-5.4-nano"} for _ in range(7)])
    item = found()["cacheable_repeats"]
    assert item["evidence"]["repeats"] == 6 and item["evidence"]["saving_micros"] == 600
    assert "$0.0006" in item["message"]


def test_an_a_b_winner_is_suggested_with_its_strategy():
    assert runner.invoke(app, ["ab", "start", "exp", "-v", "hi=learned@0.0", "-v", "lo=rules@1.0"]).exit_code == 0
    rows = []
    for i in range(40):
        for variant, cost in (("hi", 130 + i % 7), ("lo", 100 + i % 7)):
            rows.append({"tier": "cheap", "provider": "openai", "model": "gpt-5.4-nano", "cost_micros": cost,
                         "ab_test": "exp", "ab_variant": variant})
    fill(rows)
    item = found()["ab_winner"]
    assert item["evidence"]["winner"] == "lo" and item["evidence"]["strategy"] == "rules@1.0"
    assert item["command"].startswith("routecli config set routing.classifier rules")
