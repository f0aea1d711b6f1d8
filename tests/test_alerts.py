"""Alert rules: each threshold's edge, recording once per subject and day, acknowledging, the command."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from routecli.analytics import alerts as rules
from routecli.analytics.alerts import acknowledge, check_alerts, list_alerts
from routecli.cli import app
from routecli.config import AlertConfig, config_path, load_config
from routecli.errors import ConfigError
from routecli.store import Attempt
from routecli.store.alerts import record_alert
from routecli.store.engine import write_transaction

NOW = datetime(2026, 5, 20, 12, tzinfo=timezone.utc)
DAY = "2026-05-20"
ONLY = dict(escalation_rate=0, error_rate=0, anomaly_factor=0, min_savings=0, min_confidence=0, budget_share=0)
runner = CliRunner()


def make(**fields) -> Attempt:
    values = dict(created_at=NOW - timedelta(hours=1), source="ask", prompt_hash="h", classifier="rules",
                  classifier_version="1", score=0.5, tier="cheap", provider="openai", model="nano", phase="rules",
                  status="ok", latency_ms=100.0, cost_micros=1000, baseline_cost_micros=10_000, confidence=0.9)
    values.update(fields)
    return Attempt(**values)


def config(**alerts):
    return SimpleNamespace(alerts=AlertConfig(**{**ONLY, "min_requests": 4, **alerts}), guards=None)


# ---------------------------------------------------------------- the pure rules, at their edges


def test_escalation_rule_edges():
    settings = AlertConfig(escalation_rate=0.25, min_requests=8)
    span = {"since": "s", "until": "u"}
    assert rules.escalation_rule(7, 7, settings, span, DAY) == []  # too few requests to say
    assert rules.escalation_rule(8, 2, settings, span, DAY) == []  # exactly the threshold: not above
    [found] = rules.escalation_rule(8, 3, settings, span, DAY)
    assert (found.kind, found.dedupe_key, found.evidence["rate"]) == ("escalation_rate", f"escalation_rate:{DAY}", 0.375)
    assert "38% of requests were escalated" in found.message


def test_error_rules_per_model():
    settings = AlertConfig(error_rate=0.2, min_requests=10)
    found = rules.error_rules({"a:x": (8, 2), "b:y": (5, 6), "c:z": (1, 4)}, settings, {}, DAY)
    assert [(f.evidence["model"], f.severity, f.dedupe_key) for f in found] == [("b:y", "critical", f"error_rate:b:y:{DAY}")]


def test_anomaly_rule_against_the_trailing_median():
    settings = AlertConfig(anomaly_factor=3.0)
    daily = {"2026-05-17": 100, "2026-05-18": 0, "2026-05-19": 200, DAY: 450}
    [found] = rules.anomaly_rule(daily, settings, DAY)  # median of 100, 0, 200 is 100; 450 > 300
    assert found.evidence["trailing_median_micros"] == 100 and found.evidence["factor"] == 4.5
    assert rules.anomaly_rule({**daily, DAY: 300}, settings, DAY) == []
    assert rules.anomaly_rule({"2026-05-19": 0, DAY: 10**9}, settings, DAY) == []  # no history, no anomaly


def test_budget_rules_warn_then_critical():
    standings = [("day:2026-05-20", "daily", 79, 100), ("month:2026-05", "monthly", 80, 100), ("total", "total", 120, 100)]
    found = rules.budget_rules(standings, 0.8)
    assert [(f.severity, f.dedupe_key) for f in found] == [
        ("warning", "budget:month:2026-05:80"), ("critical", "budget:total:100")]


def test_savings_and_confidence_rules():
    settings = AlertConfig(min_savings=0.2, min_confidence=0.6, min_requests=2)
    totals = {"savings_rows": 2, "savings_baseline": 1000, "savings_cost": 700, "overhead_cost": 150,
              "conf_n": 2, "conf_sum": 1.1}
    [low] = rules.savings_rule(totals, settings, {}, DAY)
    assert low.evidence["saved_share"] == 0.15
    assert rules.savings_rule({**totals, "overhead_cost": 0}, settings, {}, DAY) == []  # 30% saved
    [unsure] = rules.confidence_rule(totals, settings, {}, DAY)
    assert unsure.evidence["mean"] == 0.55
    assert rules.confidence_rule({**totals, "conf_n": 1}, settings, {}, DAY) == []


# ---------------------------------------------------------------- checking a ledger


def noisy_day(store) -> None:
    rows = []
    for i in range(10):
        rows.append(make(id=f"a{i}", request_id=f"r{i}", confidence=0.4))
        if i < 4:
            rows.append(make(id=f"e{i}", request_id=f"r{i}", parent_id=f"a{i}", step="escalation", tier="premium",
                             model="big", confidence=0.9))
    rows += [make(id=f"x{i}", request_id=f"x{i}", model="flaky", status="error" if i < 3 else "ok",
                  cost_micros=None if i < 3 else 1000) for i in range(5)]
    rows.append(make(id="old", request_id="old", created_at=NOW - timedelta(days=3), confidence=0.1))  # out of window
    store.record(*rows)


def test_check_records_each_finding_once(store):
    noisy_day(store)
    settings = config(escalation_rate=0.25, error_rate=0.5, min_confidence=0.6, min_savings=0.9)
    raised = check_alerts(store, settings, now=NOW)
    assert sorted(a.kind for a in raised) == ["error_rate", "escalation_rate", "low_confidence", "low_savings"]
    by_kind = {a.kind: a for a in raised}
    assert by_kind["escalation_rate"].evidence["requests"] == 15 and by_kind["escalation_rate"].evidence["escalated"] == 4
    assert by_kind["error_rate"].evidence["model"] == "openai:flaky" and by_kind["error_rate"].evidence["errors"] == 3
    assert by_kind["error_rate"].dedupe_key == f"error_rate:openai:flaky:{DAY}"
    assert check_alerts(store, settings, now=NOW) == []  # seen again the same day: nothing new
    assert len(list_alerts(store)) == 4
    # 22 h later the rows are still inside the 24 h window, but it is another UTC day: said again, once
    tomorrow = check_alerts(store, settings, now=NOW + timedelta(hours=22))
    assert sorted(a.dedupe_key for a in tomorrow)[0] == "error_rate:openai:flaky:2026-05-21"
    assert len(tomorrow) == 4 and len(list_alerts(store)) == 8

def test_disabled_rules_find_nothing(store):
    noisy_day(store)
    assert check_alerts(store, config(), now=NOW) == []  # every threshold 0
    assert check_alerts(store, config(escalation_rate=0.2, enabled=False), now=NOW) == []
    assert check_alerts(store, config(escalation_rate=0.2, min_requests=100), now=NOW) == []
    assert len(check_alerts(store, config(escalation_rate=0.2), now=NOW)) == 1  # the same, switched on


def test_anomaly_from_the_ledger(store):
    store.record(*(make(id=f"d{d}", request_id=f"d{d}", created_at=NOW - timedelta(days=d), cost_micros=1000)
                   for d in range(1, 8)))
    store.record(make(id="big", request_id="big", cost_micros=5000, created_at=NOW - timedelta(minutes=5)))
    [found] = check_alerts(store, config(anomaly_factor=3.0, anomaly_days=7), now=NOW)
    assert found.kind == "spend_anomaly" and found.evidence["spent_micros"] == 5000
    assert found.evidence["trailing_median_micros"] == 1000


def test_budget_share_shares_the_guards_dedupe_key(store):
    store.record(make(id="spend", request_id="spend", cost_micros=850_000))
    budgets = SimpleNamespace(limits=SimpleNamespace(daily=Decimal("1.00"), monthly=None, total=Decimal("10")))
    settings = SimpleNamespace(alerts=AlertConfig(**{**ONLY, "budget_share": 0.8}),
                               guards=SimpleNamespace(budgets=budgets))
    with write_transaction(store.engine) as conn:  # the budget guard saw it first
        record_alert(conn, kind="budget", severity="warning", message="guard said so", evidence={},
                     dedupe_key=f"budget:day:{DAY}:80")
    assert check_alerts(store, settings, now=NOW) == []
    store.record(make(id="more", request_id="more", cost_micros=200_000))
    [over] = check_alerts(store, settings, now=NOW)
    assert (over.severity, over.dedupe_key, over.evidence["spent_micros"]) == ("critical", f"budget:day:{DAY}:100", 1_050_000)


def test_acknowledge(store):
    with write_transaction(store.engine) as conn:
        ids = [record_alert(conn, kind="k", severity="warning", message=f"m{i}", evidence={"i": i},
                            dedupe_key=f"k{i}") for i in range(3)]
    assert acknowledge(store, [ids[0], "nope"]) == [ids[0]]
    assert {a.id for a in list_alerts(store)} == set(ids[1:])
    assert acknowledge(store, [ids[0]]) == []  # already acknowledged
    assert sorted(acknowledge(store)) == sorted(ids[1:])
    assert list_alerts(store) == [] and len(list_alerts(store, include_acknowledged=True)) == 3
    assert all(a.acknowledged_at for a in list_alerts(store, include_acknowledged=True))


# ---------------------------------------------------------------- config and command


def test_config_section(isolated_home):
    assert load_config().alerts == AlertConfig()
    config_path().write_text("[alerts]\nerror_rate = 0.5\nmin_savings = 0\nanomaly_days = 14\n")
    loaded = load_config().alerts
    assert (loaded.error_rate, loaded.min_savings, loaded.anomaly_days) == (0.5, 0.0, 14)
    for bad in ("error_rate = 1.5", "anomaly_factor = 0.5", "min_requests = 0", "colour = 'red'"):
        config_path().write_text(f"[alerts]\n{bad}\n")
        with pytest.raises(ConfigError, match="alerts"):
            load_config()
    config_path().unlink()
    assert runner.invoke(app, ["config", "set", "alerts.escalation_rate", "0"]).exit_code == 0
    assert load_config().alerts.escalation_rate == 0.0


def test_alerts_command(store, isolated_home):
    noisy_day(store)
    config_path().write_text("[alerts]\nmin_requests = 4\nerror_rate = 0.5\nescalation_rate = 0\n"
                             "min_savings = 0\nmin_confidence = 0\nanomaly_factor = 0\n")
    # the rows are an hour before NOW; the command checks at the real time, so move them there
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE attempts SET created_at = strftime('%Y-%m-%dT%H:%M:%S.000000Z', 'now')")
    checked = runner.invoke(app, ["alerts", "check", "--json"])
    assert checked.exit_code == 0, checked.output
    [raised] = json.loads(checked.stdout)
    assert raised["kind"] == "error_rate" and raised["evidence"]["model"] == "openai:flaky"
    assert json.loads(runner.invoke(app, ["alerts", "check", "--json"]).stdout) == []
    listed = runner.invoke(app, ["alerts"])
    assert listed.exit_code == 0 and raised["id"] in listed.stdout and "openai:flaky" in listed.stdout
    assert runner.invoke(app, ["alerts", "ack", raised["id"]]).exit_code == 0
    assert json.loads(runner.invoke(app, ["alerts", "--json"]).stdout) == []
    assert len(json.loads(runner.invoke(app, ["alerts", "--all", "--json"]).stdout)) == 1
    neither = runner.invoke(app, ["alerts", "ack"])
    assert neither.exit_code == 2 and "--all" in neither.stderr
    unknown = runner.invoke(app, ["alerts", "ack", "nope"])
    assert unknown.exit_code == 2 and "No open alert with id nope" in unknown.stderr

