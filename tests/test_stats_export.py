"""Stats and exports over a handful of hand-made rows whose sums are worked out below."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone

import pytest

from routecli.analytics.export import EXPORT_COLUMNS, iter_rows, write_csv, write_json, write_jsonl
from routecli.analytics.stats import compute_stats
from routecli.errors import UsageError
from routecli.store import Attempt, open_store

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)

# (hours after T0, tier, provider:model, status, in, out, cost µ$, baseline µ$, latency ms)
ROWS = [
    (1, "cheap", "openai:gpt-5.4-nano", "ok", 1000, 500, 1000, 20000, 100.0),
    (2, "cheap", "openai:gpt-5.4-nano", "ok", 2000, 100, 2000, 30000, 300.0),
    (3, "cheap", "groq:openai/gpt-oss-20b", "ok", 500, 500, None, 10000, 200.0),  # price unknown
    (4, "premium", "anthropic:claude-opus-5", "ok", 100, 100, 5000, 5000, 400.0),
    (5, "premium", "anthropic:claude-opus-5", "error", None, None, None, None, None),
    (6, "standard", "openai:gpt-5.4-mini", "dry-run", None, None, None, None, None),
    (48, "standard", "openai:gpt-5.4-mini", "ok", 10, 10, 700, None, 50.0),  # no baseline price
]


def make(hours, tier, ref, status, tokens_in, tokens_out, cost, baseline, latency) -> Attempt:
    provider, _, model = ref.partition(":")
    return Attempt(
        created_at=T0 + hours * HOUR,
        source="ask",
        prompt_hash=f"h{hours}",
        classifier="rules",
        classifier_version="1",
        score=0.5,
        tier=tier,
        provider=provider,
        model=model,
        phase="rules",
        status=status,
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        cached_tokens=100 if hours == 1 else None,
        cost_micros=cost,
        baseline_cost_micros=baseline,
        latency_ms=latency,
        tags=["t"],
    )


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "ledger.db") as store:
        store.record(*(make(*row) for row in ROWS))
        yield store


# ---------------------------------------------------------------- stats


def test_totals(store):
    totals = compute_stats(store)["totals"]
    assert (totals["attempts"], totals["requests"], totals["ok"]) == (7, 7, 5)
    assert (totals["errors"], totals["dry_runs"], totals["skipped"]) == (1, 1, 0)
    assert (totals["input_tokens"], totals["output_tokens"], totals["cached_tokens"]) == (3610, 1210, 100)
    assert totals["cost_usd"] == "0.008700"  # 1000 + 2000 + 5000 + 700 µ$; the unknown row is out
    assert totals["cost_unknown"] == 1
    # savings only over rows 1, 2 and 4: cost 8000 µ$ against baseline 55000 µ$
    assert totals["savings"] == {
        "rows": 3,
        "cost_usd": "0.008000",
        "baseline_cost_usd": "0.055000",
        "saved_usd": "0.047000",
        "saved_pct": 85.45,
        "overhead_usd": "0.000000",
        "cache_saved_usd": "0.000000",
    }
    # ok latencies 50, 100, 200, 300, 400: nearest rank p50 = 3rd, p95 = p99 = 5th
    assert totals["latency_ms"] == {"mean": 210.0, "p50": 200.0, "p95": 400.0, "p99": 400.0}
    assert totals["rates"] == {"error": round(1 / 6, 4), "fallback": 0.0, "escalation": 0.0, "cache_hit": 0.0}


def test_by_tier(store):
    by_tier = compute_stats(store)["by_tier"]
    assert list(by_tier) == ["cheap", "premium", "standard"]
    cheap, premium, standard = by_tier["cheap"], by_tier["premium"], by_tier["standard"]
    assert (cheap["attempts"], cheap["cost_usd"], cheap["cost_unknown"]) == (3, "0.003000", 1)
    assert cheap["savings"]["rows"] == 2 and cheap["savings"]["saved_pct"] == 94.0
    assert cheap["latency_ms"] == {"mean": 200.0, "p50": 200.0, "p95": 300.0, "p99": 300.0}
    assert (premium["ok"], premium["errors"], premium["savings"]["saved_usd"]) == (1, 1, "0.000000")
    assert premium["savings"]["saved_pct"] == 0.0
    assert (standard["dry_runs"], standard["cost_usd"]) == (1, "0.000700")
    assert standard["savings"] == {
        "rows": 0,
        "cost_usd": "0.000000",
        "baseline_cost_usd": "0.000000",
        "saved_usd": "0.000000",
        "saved_pct": None,
        "overhead_usd": "0.000000",
        "cache_saved_usd": "0.000000",
    }


def test_by_model(store):
    by_model = compute_stats(store)["by_model"]
    assert set(by_model) == {
        "openai:gpt-5.4-nano",
        "groq:openai/gpt-oss-20b",
        "anthropic:claude-opus-5",
        "openai:gpt-5.4-mini",
    }
    groq = by_model["groq:openai/gpt-oss-20b"]
    assert (groq["cost_usd"], groq["cost_unknown"], groq["savings"]["rows"]) == ("0.000000", 1, 0)
    assert by_model["openai:gpt-5.4-nano"]["input_tokens"] == 3000


def test_window_is_half_open_and_json_ready(store):
    stats = compute_stats(store, since=T0 + 2 * HOUR, until=T0 + 5 * HOUR)
    totals = stats["totals"]
    assert (totals["attempts"], totals["ok"], totals["cost_usd"]) == (3, 3, "0.007000")
    assert stats["since"] == "2026-01-01T02:00:00+00:00"
    assert json.loads(json.dumps(stats)) == stats
    assert any("unknown price" in note for note in stats["notes"])
    assert any("savings cover 2 of 3" in note for note in stats["notes"])


def test_naive_window_is_refused(store):
    with pytest.raises(ValueError, match="naive"):
        compute_stats(store, since=datetime(2026, 1, 1))


def test_empty_ledger(tmp_path):
    with open_store(tmp_path / "empty.db") as store:
        stats = compute_stats(store)
    assert stats["totals"]["attempts"] == 0 and stats["totals"]["cost_usd"] == "0.000000"
    assert stats["totals"]["latency_ms"] == {"mean": None, "p50": None, "p95": None, "p99": None}
    assert stats["by_tier"] == {} and stats["notes"] == []


# ---------------------------------------------------------------- export


def test_iter_rows_in_time_order_with_dollars_and_utc_times(store):
    rows = list(iter_rows(store))
    assert len(rows) == len(ROWS) and list(rows[0]) == list(EXPORT_COLUMNS)
    assert [row["prompt_hash"] for row in rows] == [f"h{row[0]}" for row in ROWS]
    assert rows[0]["cost_usd"] == "0.001000" and rows[0]["baseline_cost_usd"] == "0.020000"
    assert rows[2]["cost_usd"] is None
    assert "cost_micros" not in rows[0]
    assert rows[0]["created_at"] == "2026-01-01T01:00:00+00:00"
    assert rows[0]["tags"] == ["t"]


def test_iter_rows_columns_and_window(store):
    rows = list(iter_rows(store, since=T0 + 4 * HOUR, columns=["tier", "cost_usd"]))
    assert rows == [
        {"tier": "premium", "cost_usd": "0.005000"},
        {"tier": "premium", "cost_usd": None},
        {"tier": "standard", "cost_usd": None},
        {"tier": "standard", "cost_usd": "0.000700"},
    ]
    with pytest.raises(UsageError, match="cost_micros"):
        list(iter_rows(store, columns=["cost_micros"]))


def test_abandoned_export_returns_its_connection(store):
    rows = iter_rows(store)
    next(rows)
    rows.close()
    assert store.engine.pool.checkedout() == 0


def test_csv_neutralises_formulas(store):
    nasty = ["=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", "\tx", "\rx", "plain"]
    store.record(*(
        make(100 + i, "cheap", "openai:m", "ok", 1, 1, 1, 1, 1.0).model_copy(update={"prompt": text})
        for i, text in enumerate(nasty)
    ))
    out = io.StringIO(newline="")
    columns = ["prompt", "input_tokens", "cost_usd", "tags", "error_kind"]
    assert write_csv(iter_rows(store, since=T0 + 100 * HOUR, columns=columns), out) == len(nasty)
    parsed = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert parsed[0] == columns
    assert [row[0] for row in parsed[1:]] == ["'" + text for text in nasty[:-1]] + ["plain"]
    assert parsed[1][1:] == ["1", "0.000001", '["t"]', ""]


def test_csv_of_nothing_still_has_a_header(store):
    out = io.StringIO()
    assert write_csv(iter(()), out, columns=["id", "tier"]) == 0
    assert out.getvalue().strip() == "id,tier"


def test_json_array_round_trips_and_is_written_incrementally(store):
    out = io.StringIO()

    def rows():
        iterator = iter_rows(store)
        yield next(iterator)
        assert '"prompt_hash": "h1"' in out.getvalue()  # the first row left before the second came
        yield from iterator

    assert write_json(rows(), out) == len(ROWS)
    assert json.loads(out.getvalue()) == list(iter_rows(store))
    empty = io.StringIO()
    write_json([], empty)
    assert json.loads(empty.getvalue()) == []


def test_jsonl(store):
    out = io.StringIO()
    assert write_jsonl(iter_rows(store, columns=["id", "status"]), out) == len(ROWS)
    lines = out.getvalue().splitlines()
    assert [json.loads(line)["status"] for line in lines] == [row[3] for row in ROWS]
