"""export: --where and --columns, money and time as they leave, CSV text columns, no secret in any row."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone

import pytest
from typer.testing import CliRunner

from conftest import VENDOR_KEY
from routecli.analytics.export import EXPORT_COLUMNS, iter_rows, parse_where, write_csv
from routecli.cli import app
from routecli.config import db_location
from routecli.errors import UsageError
from routecli.store import Attempt, open_store

T0 = datetime(2026, 4, 1, tzinfo=timezone.utc)
runner = CliRunner()


def make(**fields) -> Attempt:
    values = dict(created_at=T0, source="ask", prompt_hash="h", classifier="rules", classifier_version="1",
                  score=0.5, tier="cheap", provider="openai", model="nano", phase="rules", status="ok",
                  input_tokens=10, cost_micros=1500, tags=["a"])
    values.update(fields)
    return Attempt(**values)


@pytest.fixture
def store():
    with open_store(db_location()) as opened:
        opened.record(
            make(id="r1", tags=["a", "b"], created_at=T0 + timedelta(microseconds=250)),
            make(id="r2", tier="premium", input_tokens=99, cost_micros=None, created_at=T0 + timedelta(hours=1)),
            make(id="r3", status="error", error_kind="timeout", agent="ci", tags=[], created_at=T0 + timedelta(hours=2)),
            make(id="r4", cache_kind="exact", cost_micros=0, saved_micros=1500, created_at=T0 + timedelta(hours=3)),
        )
        yield opened


def ids(rows) -> list[str]:
    return [row["id"] for row in rows]


def test_where_filters_are_anded_and_typed(store):
    assert ids(iter_rows(store, where=parse_where(["tier=cheap"]))) == ["r1", "r3", "r4"]
    assert ids(iter_rows(store, where=parse_where(["tier=cheap", "status=ok"]))) == ["r1", "r4"]
    assert ids(iter_rows(store, where=parse_where(["input_tokens=99"]))) == ["r2"]
    assert ids(iter_rows(store, where=parse_where(["cost_usd=0.0015"]))) == ["r1", "r3"]
    assert ids(iter_rows(store, where=parse_where(["cost_usd="]))) == ["r2"]  # empty: NULL
    assert ids(iter_rows(store, where=parse_where(["agent=ci"]))) == ["r3"]
    assert ids(iter_rows(store, where=parse_where(["tag=b"]))) == ["r1"]
    assert ids(iter_rows(store, where=parse_where(["tag=a", "tier=premium"]))) == ["r2"]
    # the value is a bound parameter, never SQL
    assert ids(iter_rows(store, where=parse_where(["tier=cheap' OR '1'='1"]))) == []


@pytest.mark.parametrize("bad, message", [
    ("tier", "field=value"), ("=x", "field=value"), ("password=x", "Cannot filter on 'password'"),
    ("tier; DROP TABLE attempts=x", "Cannot filter on"), ("input_tokens=many", "takes a number"),
    ("created_at=2026", "Cannot filter on"),
])
def test_where_is_checked_before_any_query(bad, message):
    with pytest.raises(UsageError, match=message):
        parse_where([bad])


def test_values_as_they_leave(store):
    rows = list(iter_rows(store, columns=["id", "created_at", "cost_usd", "saved_usd", "tags"]))
    assert rows[0] == {"id": "r1", "created_at": "2026-04-01T00:00:00.000250+00:00", "cost_usd": "0.001500",
                       "saved_usd": None, "tags": ["a", "b"]}
    assert rows[1]["created_at"] == "2026-04-01T01:00:00+00:00"  # as datetime.isoformat() writes it
    assert rows[3]["saved_usd"] == "0.001500" and rows[3]["cost_usd"] == "0.000000"
    assert "saved_micros" not in EXPORT_COLUMNS and "cost_micros" not in EXPORT_COLUMNS
    as_text = list(iter_rows(store, columns=["tags", "signals"], json_text=True))
    assert as_text[0] == {"tags": '["a","b"]', "signals": "{}"}


def test_csv_from_stored_json_text_matches_decoded(store):
    decoded, raw = io.StringIO(newline=""), io.StringIO(newline="")
    write_csv(iter_rows(store, columns=["id", "tags", "reasons"]), decoded)
    write_csv(iter_rows(store, columns=["id", "tags", "reasons"], json_text=True), raw)
    parse = [list(csv.reader(io.StringIO(out.getvalue()))) for out in (decoded, raw)]
    assert [[json.loads(cell) if i else cell for i, cell in enumerate(row)] for row in parse[0][1:]] == \
        [[json.loads(cell) if i else cell for i, cell in enumerate(row)] for row in parse[1][1:]]


def test_export_command_columns_where_and_file(store, tmp_path):
    result = runner.invoke(app, ["export", "--csv", "--columns", "id,tier", "--columns", "cost_usd",
                                 "--where", "tier=cheap", "--where", "status=ok"])
    assert result.exit_code == 0, result.output
    assert list(csv.reader(io.StringIO(result.stdout))) == [
        ["id", "tier", "cost_usd"], ["r1", "cheap", "0.001500"], ["r4", "cheap", "0.000000"]]
    none = runner.invoke(app, ["export", "--csv", "--columns", "id,tier", "--where", "tier=nope"])
    assert none.stdout.strip() == "id,tier" and "exported 0 rows" in none.stderr
    out = tmp_path / "rows.jsonl"
    written = runner.invoke(app, ["export", "--jsonl", "-o", str(out), "--since", "2026-04-01T01:30:00"])
    assert written.exit_code == 0 and "exported 2 rows" in written.stderr
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["r3", "r4"]
    bad = runner.invoke(app, ["export", "--where", "secret=1"])
    assert bad.exit_code == 2 and "Cannot filter on 'secret'" in bad.stderr
    unknown = runner.invoke(app, ["export", "--columns", "id,api_key"])
    assert unknown.exit_code == 2 and "api_key" in unknown.stderr


def test_no_key_in_any_export(vendor):
    assert runner.invoke(app, ["ask", "hello"]).exit_code == 0
    assert runner.invoke(app, ["ask", "--model", "openai:gpt-5.4-nano", "fail [[status=401]]"]).exit_code == 1
    for fmt in ("--csv", "--json", "--jsonl"):
        out = runner.invoke(app, ["export", fmt])
        assert out.exit_code == 0 and out.stdout.count("\n") >= 2
        assert VENDOR_KEY not in out.stdout and VENDOR_KEY[:12] not in out.stdout, fmt
