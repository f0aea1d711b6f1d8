"""`routecli db prune` / `db vacuum`: old rows go, their sums stay; budgets and running A/B tests are not reset."""

import json
from datetime import timedelta

from sqlalchemy import text
from typer.testing import CliRunner

from routecli.cli import app
from routecli.config import db_location
from routecli.store import Attempt, open_store, utcnow

runner = CliRunner()


def fill():
    old, new = utcnow() - timedelta(days=100), utcnow() - timedelta(days=1)
    base = dict(source="ask", prompt_hash="h", classifier="learned", classifier_version="t", score=0.5,
                phase="learned", status="ok", tier="cheap", provider="openai", model="gpt-5.4-nano",
                baseline_cost_micros=1000)
    rows = [Attempt(**base, created_at=old, cost_micros=100, tags=["team"]) for _ in range(5)]
    rows += [Attempt(**base, created_at=old, cost_micros=100, ab_test="exp", ab_variant="a")]
    rows += [Attempt(**base, created_at=new, cost_micros=7) for _ in range(2)]
    with open_store(db_location()) as store:
        store.record(*rows)
        with store.engine.begin() as conn:
            conn.execute(text("INSERT INTO ab_tests VALUES ('exp', '[]', '50/50', 'prompt', 'running', :at, NULL)"),
                         {"at": "2026-01-01T00:00:00.000000Z"})


def ledger(sql):
    with open_store(db_location()) as store, store.read() as conn:
        return conn.execute(text(sql)).all()


def test_prune_needs_a_copy_or_a_yes_and_dry_run_only_counts():
    fill()
    refused = runner.invoke(app, ["db", "prune", "--before", "30d"])
    assert refused.exit_code == 2 and "--export" in refused.stderr
    plan = runner.invoke(app, ["db", "prune", "--before", "30d", "--dry-run"])
    assert plan.exit_code == 0 and "would remove 5 attempts ($0.0005)" in plan.stderr
    assert "kept 1 for running A/B tests" in plan.stderr
    assert ledger("SELECT COUNT(*) FROM attempts")[0][0] == 8


def test_prune_exports_then_removes_and_keeps_the_sums(isolated_home, tmp_path):
    (isolated_home / "config.toml").write_text("[budgets]\ntotal = 10.0\n[budgets.tags.team]\ntotal = 1.0\n")
    fill()
    copy = tmp_path / "old.jsonl"
    result = runner.invoke(app, ["db", "prune", "--before", "30d", "--export", str(copy)])
    assert result.exit_code == 0, result.output
    exported = [json.loads(line) for line in copy.read_text().splitlines()]
    assert len(exported) == 6  # the export is a superset: the kept A/B row is in it too
    assert ledger("SELECT COUNT(*) FROM attempts")[0][0] == 3
    [(attempts, cost)] = ledger("SELECT SUM(attempts), SUM(cost_micros) FROM pruned_totals")
    assert (attempts, cost) == (5, 500)
    limits = {b["key"]: b for b in json.loads(runner.invoke(app, ["budget", "--json"]).stdout)["limits"]}
    assert limits["total"]["spent_micros"] == 614  # 500 pruned + 100 kept A/B + 14 recent: nothing reset
    assert limits["tag:team:total"]["spent_micros"] == 500
    again = runner.invoke(app, ["db", "prune", "--before", "30d", "--export", str(copy)])
    assert again.exit_code == 2 and "exists" in again.stderr
    assert runner.invoke(app, ["db", "vacuum"]).exit_code == 0
    stats = json.loads(runner.invoke(app, ["stats", "--json"]).stdout)
    assert stats["pruned"]["attempts"] == 5 and stats["pruned"]["cost_usd"] == "0.000500"
    assert stats["totals"]["requests"] == 3 and any("db prune" in note for note in stats["notes"])
    assert json.loads(runner.invoke(app, ["stats", "--json", "--since", "7d"]).stdout)["pruned"] is None


import pgserver  # noqa: E402

pg_admin, pg_url = pgserver.pg_admin, pgserver.pg_url  # the fixtures


def test_prune_and_vacuum_on_postgres(pg_url, isolated_home, tmp_path):
    test_prune_exports_then_removes_and_keeps_the_sums(isolated_home, tmp_path)
