"""`routecli db copy`: a ledger moved between SQLite and PostgreSQL keeps every row of every table."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import inspect, text

import pgserver
from routecli.store import open_store
from test_postgres import PRICES, add_config, ok, prompts, rows, run, sample_attempts

pg_admin, pg_url = pgserver.pg_admin, pgserver.pg_url  # the fixtures


def fill(vendor_home: Path, lite: Path, tmp_path: Path) -> None:
    """A SQLite ledger with rows in every table, most made by the commands themselves."""
    from routecli.domain import ModelRef
    from routecli.store import judge_cache, similar_cache

    add_config(vendor_home, PRICES + '[budgets]\ntotal = 1000\nwarn_share = 0.01\n[breaker]\nfailures = 1\n')
    with open_store(lite) as store:
        store.record(*sample_attempts(150))
        judge_cache.save(store, "k1", "openai:gpt-5.4-nano", "cheap", "simple", "A00001")
        similar_cache.save(store, "scope", ModelRef("openai", "gpt-5.4-nano"), "a prompt", "an answer", None,
                           "A00002", 12, datetime.now(timezone.utc), 3600, 100)
        with store.engine.begin() as conn:  # what a `db prune` would have left
            conn.exec_driver_sql(
                "INSERT INTO pruned_totals VALUES ('P1', '2025-01-02', 'ask', 'ok', 'cheap', 'openai', 'gpt-5.4-nano', "
                "NULL, '[]', NULL, 3, 3, 30, 20, 5, 0, 50, 0, '2026-01-01T00:00:00.000000Z')")
    db = ["--db", str(lite)]
    ok("batch", str(prompts(tmp_path / "in.jsonl", 9, model="openai:gpt-5.4-mini")), "-o", str(tmp_path / "o"), *db)
    ok("ask", "--model", "openai:gpt-5.4-nano", "--temperature", "0", "cache me", *db)
    ok("ask", "--tier", "cheap", "x [[status=503 only=gpt-5.4-nano]]", *db)  # opens a breaker
    ok("ab", "start", "exp", "-v", "a=rules", "-v", "b=rules", *db)
    ok("feedback", "A00003", "--score", "0.5", *db)


def table_rows(location) -> dict[str, list[tuple]]:
    with open_store(location) as store, store.read() as conn:
        found = inspect(conn)
        return {name: [tuple(row) for row in conn.execute(text(
            f"SELECT * FROM {name} ORDER BY {', '.join(found.get_pk_constraint(name)['constrained_columns'])}"))]
            for name in found.get_table_names() if name not in ("_migrations", "budget_spend", "budget_holds")}


def test_db_copy_sqlite_to_postgres_and_back_keeps_every_row(vendor, pg_url, isolated_home, tmp_path):
    lite, back = tmp_path / "lite.db", tmp_path / "back.db"
    fill(isolated_home, lite, tmp_path)
    before = table_rows(lite)
    assert all(before.values()), {name: len(found) for name, found in before.items()}  # every table has rows
    copied = ok("db", "copy", "--from", str(lite), "--to", pg_url, "--batch-size", "7", "--json")
    tables = {t["table"]: t for t in json.loads(copied.stdout)["tables"]}
    assert tables["attempts"]["copied"] == len(before["attempts"]) and "budget_spend" not in tables
    assert table_rows(pg_url) == before
    ok("db", "copy", "--from", pg_url, "--to", f"sqlite:///{back}")
    assert table_rows(back) == before
    spent = [json.loads(ok("budget", "--json", "--db", where).stdout)["limits"][0]["spent_micros"]
             for where in (str(lite), pg_url)]
    assert spent[0] == spent[1] > 0  # the counter is rebuilt from the copied attempts


def test_db_copy_refuses_a_non_empty_target_and_append_adds_only_what_is_missing(vendor, pg_url, isolated_home,
                                                                               tmp_path):
    lite = tmp_path / "lite.db"
    fill(isolated_home, lite, tmp_path)
    ok("db", "copy", "--from", str(lite), "--to", pg_url)
    again = run("db", "copy", "--from", str(lite), "--to", pg_url)
    assert again.exit_code == 2 and "already holds rows" in again.stderr and "--append" in again.stderr
    assert pg_url.split("@")[0].split(":")[-1] not in again.stderr  # the password is never shown
    spent_before = json.loads(ok("budget", "--json").stdout)["limits"][0]["spent_micros"]  # a counter on the target
    ok("ask", "--model", "openai:gpt-5.4-mini", "one more", "--db", str(lite))  # not nano: its breaker stays
    appended = json.loads(ok("db", "copy", "--from", str(lite), "--to", pg_url, "--append", "--json").stdout)
    tables = {t["table"]: t for t in appended["tables"]}
    assert (tables["attempts"]["copied"], tables["runs"]["copied"]) == (1, 0)
    assert tables["attempts"]["skipped"] == len(table_rows(lite)["attempts"]) - 1
    assert table_rows(pg_url) == table_rows(lite)
    [(last_cost,)] = rows(pg_url, "SELECT cost_micros FROM attempts WHERE prompt = 'one more'")
    after = json.loads(ok("budget", "--json").stdout)["limits"][0]["spent_micros"]
    assert after == spent_before + last_cost  # appended attempts moved the target's counter too


def test_db_copy_refuses_to_copy_a_ledger_onto_itself(pg_url, tmp_path):
    result = run("db", "copy", "--from", pg_url, "--to", pg_url)
    assert result.exit_code == 2 and "same ledger" in result.stderr
    lite = tmp_path / "lite.db"
    result = run("db", "copy", "--from", str(lite), "--to", f"sqlite:///{lite}")  # one file, two spellings
    assert result.exit_code == 2 and "same ledger" in result.stderr


def test_db_copy_refuses_a_source_that_does_not_exist_and_creates_nothing(tmp_path):
    result = run("db", "copy", "--from", str(tmp_path / "typo.db"), "--to", str(tmp_path / "new.db"))
    assert result.exit_code == 2 and "no ledger at" in result.stderr
    assert not list(tmp_path.glob("*.db"))
