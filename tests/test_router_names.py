"""Router names per request (RouteLLM style): --router NAME[:THRESHOLD] and model "router-NAME-THRESHOLD"."""

import json

from typer.testing import CliRunner

from conftest import ledger_rows
from routecli.cli import app
from routecli.config import load_config

runner = CliRunner()


def route(*args):
    result = runner.invoke(app, ["route", "--json", *args])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_threshold_zero_sends_everything_to_the_strongest_tier_and_one_to_the_cheapest():
    [strong] = route("--router", "learned:0.0", "hi")
    [weak] = route("--router", "learned:1.0", "prove the Riemann hypothesis step by step")
    order = load_config().tier_order
    assert (strong["tier"], weak["tier"]) == (order[-1], order[0])
    assert "router learned@0.0" in strong["reasons"]


def test_a_line_may_name_its_own_router_over_the_command_default(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"id": "a", "prompt": "hi", "router": "rules:0.0"}) + "\n"
                    + json.dumps({"id": "b", "prompt": "hi"}) + "\n")
    a, b = route("--router", "learned:1.0", "--file", str(path))
    order = load_config().tier_order
    assert (a["tier"], b["tier"]) == (order[-1], order[0])
    assert "router rules@0.0" in a["reasons"] and "router learned@1.0" in b["reasons"]


def test_the_router_is_recorded_in_the_ledger_decision():
    result = runner.invoke(app, ["ask", "--dry-run", "--router", "rules:0.0", "hello"])
    assert result.exit_code == 0, result.output
    [row] = ledger_rows()
    assert row.classifier == "rules" and row.tier == "premium" and "router rules@0.0" in row.reasons


def test_unknown_routers_are_one_line_usage_errors():
    for args in (["route", "--router", "magic:0.5", "hi"], ["ask", "--router", "learned:7", "hi"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "NAME:THRESHOLD" in result.stderr
    assert ledger_rows() == []


def test_router_model_names_parse():
    from routecli.analytics.ab import router_strategy

    assert router_strategy("router-learned-0.11593").cut == 0.11593
    assert router_strategy("router-rules").classifier == "rules" and router_strategy("learned").cut is None
