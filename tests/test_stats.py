"""What stats counts once requests have judges, fallbacks, escalations and cache hits; every
breakdown; percentiles from the indexes against a plain computation; the query plans that keep
stats fast at a million rows."""

from __future__ import annotations

import json
import math
import random
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, inspect, text
from typer.testing import CliRunner

from routecli.analytics import stats_sql
from routecli.analytics.stats import check_by, compute_stats
from routecli.cli import app
from routecli.errors import UsageError
from routecli.store import MIGRATIONS, Attempt, apply_migrations, open_store
from routecli.store.engine import make_engine
from routecli.store.models import ATTEMPTS, to_row
from routecli.store.runs import Committer
from routecli.store.tags import ATTEMPT_TAGS, COPIED

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
runner = CliRunner()


def make(**fields) -> Attempt:
    values = dict(created_at=T0, source="ask", prompt_hash="h", classifier="rules", classifier_version="1",
                  score=0.5, tier="cheap", provider="openai", model="nano", phase="rules", status="ok",
                  input_tokens=10, output_tokens=10, latency_ms=100.0, cost_micros=1000,
                  baseline_cost_micros=10_000)
    values.update(fields)
    return Attempt(**values)


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "ledger.db") as opened:
        yield opened


def linked(store) -> None:
    """Four requests: r1 plain; r2 judged, then fell back; r3 escalated; r4 a cache hit."""
    store.record(
        make(id="a1", request_id="r1", agent="ci", tags=["prod"], confidence=0.9, score=0.2),
        make(id="j2", request_id="r2", source="judge", tier="judge", model="judge-m", cost_micros=50,
             baseline_cost_micros=500, latency_ms=30.0),
        make(id="a2", request_id="r2", status="error", cost_micros=None, baseline_cost_micros=None,
             latency_ms=900.0, tags=["prod", "eu"], score=0.6),
        make(id="f2", request_id="r2", parent_id="a2", step="fallback", model="mini", cost_micros=2000,
             baseline_cost_micros=10_000, latency_ms=300.0, tags=["prod", "eu"], confidence=0.8, score=0.6),
        make(id="a3", request_id="r3", confidence=0.3, score=0.4, created_at=T0 + timedelta(days=1)),
        make(id="e3", request_id="r3", parent_id="a3", step="escalation", tier="premium", model="big",
             cost_micros=8000, baseline_cost_micros=10_000, latency_ms=500.0, confidence=0.9, score=0.4,
             created_at=T0 + timedelta(days=1)),
        make(id="a4", request_id="r4", cache_kind="exact", cache_source_id="a1", cost_micros=0,
             saved_micros=1000, latency_ms=2.0, score=0.2, created_at=T0 + timedelta(days=1)),
    )


def test_requests_judges_fallbacks_escalations_and_cache_hits(store):
    linked(store)
    totals = compute_stats(store)["totals"]
    assert (totals["attempts"], totals["requests"], totals["judge_calls"]) == (7, 4, 1)
    assert (totals["ok"], totals["errors"], totals["answers"]) == (6, 1, 5)
    assert (totals["fallbacks"], totals["escalations"], totals["cache_hits"]) == (1, 1, 1)
    assert totals["rates"] == {"error": round(1 / 7, 4), "fallback": 0.25, "escalation": 0.25, "cache_hit": 0.2}
    assert totals["cost_usd"] == "0.012050" and totals["judge_cost_usd"] == "0.000050"
    # baseline once per answered request (a1, f2, a3, a4): the escalation's and the judge's are not counted;
    # cost: those answers 1000 + 2000 + 1000 + 0, plus the judge 50 and the escalation 8000
    assert totals["savings"] == {
        "rows": 4, "cost_usd": "0.012050", "baseline_cost_usd": "0.040000", "saved_usd": "0.027950",
        "saved_pct": 69.88, "overhead_usd": "0.008050", "cache_saved_usd": "0.001000",
    }
    # answers only: the judge's 30 ms and the failed call's 900 ms are not latency of an answer
    assert totals["latency_ms"]["mean"] == round((100 + 300 + 100 + 500 + 2) / 5, 1)
    assert totals["latency_ms"]["p50"] == 100.0 and totals["latency_ms"]["p99"] == 500.0
    assert totals["confidence_mean"] == round((0.9 + 0.8 + 0.3 + 0.9) / 4, 4)
    assert totals["score_mean"] == round((0.2 + 0.6 + 0.4 + 0.2) / 4, 4)  # one score per request
    assert any("judge call" in note for note in compute_stats(store)["notes"])


def test_rates_belong_to_the_group_routing_chose(store):
    linked(store)
    by_model = compute_stats(store, by=["model", "tier"])["by_model"]
    nano = by_model["openai:nano"]  # r1, r2 (fell back to mini), r3 (escalated to big), r4
    assert (nano["requests"], nano["fallbacks"], nano["escalations"]) == (4, 1, 1)
    assert by_model["openai:mini"]["requests"] == 0 and by_model["openai:mini"]["ok"] == 1
    assert by_model["openai:judge-m"]["requests"] == 0
    assert sum(group["requests"] for group in by_model.values()) == 4


def test_every_breakdown_adds_up(store):
    linked(store)
    report = compute_stats(store, by=["tier", "model", "provider", "agent", "tag", "day"])
    assert report["by"] == ["tier", "model", "provider", "agent", "tag", "day"]
    assert set(report["by_agent"]) == {"ci", "(none)"} and report["by_agent"]["ci"]["requests"] == 1
    assert set(report["by_tag"]) == {"prod", "eu", "(untagged)"}
    assert (report["by_tag"]["prod"]["requests"], report["by_tag"]["eu"]["requests"]) == (2, 1)
    assert report["by_tag"]["eu"]["fallbacks"] == 1 and report["by_tag"]["prod"]["rates"]["fallback"] == 0.5
    assert list(report["by_day"]) == ["2026-03-01", "2026-03-02"]
    assert report["by_day"]["2026-03-02"]["escalations"] == 1
    assert set(report["by_tier"]) == {"cheap", "judge", "premium"}
    for dim in ("tier", "model", "provider", "agent", "day"):
        groups = report[f"by_{dim}"].values()
        assert sum(g["requests"] for g in groups) == 4, dim
        assert sum(g["attempts"] for g in groups) == 7, dim
        assert sum(float(g["cost_usd"]) for g in groups) == pytest.approx(0.01205), dim


def test_window_is_half_open_on_days_too(store):
    linked(store)
    day_two = compute_stats(store, since=T0 + timedelta(days=1), by=["day"])
    assert list(day_two["by_day"]) == ["2026-03-02"] and day_two["totals"]["requests"] == 2
    day_one = compute_stats(store, until=T0 + timedelta(days=1), by=["day"])
    assert list(day_one["by_day"]) == ["2026-03-01"] and day_one["totals"]["escalations"] == 0


def test_unknown_breakdown_is_refused():
    assert check_by(None) == ["tier", "model"] and check_by(["day", "day"]) == ["day"]
    with pytest.raises(UsageError, match="tier, model, provider, agent, tag, day"):
        check_by(["week"])


# ---------------------------------------------------------------- percentiles


def nearest_rank(values: list[float], p: int) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p * len(ordered) / 100)) - 1]


@pytest.fixture
def noisy(store):
    rng = random.Random(6)
    rows = []
    for i in range(600):
        rows.append(make(
            created_at=T0 + timedelta(hours=rng.randrange(0, 72)), tier=rng.choice(["cheap", "standard", "premium"]),
            provider=rng.choice(["openai", "gemini"]), model=rng.choice(["a", "b"]),
            latency_ms=float(rng.randrange(50, 5000)), ttft_ms=rng.choice([None, float(rng.randrange(10, 900))]),
            status=rng.choice(["ok"] * 9 + ["error"]), source=rng.choice(["ask"] * 9 + ["judge"]),
            agent=rng.choice([None, "ci", "bot"]), tags=rng.choice([[], ["x"], ["x", "y"]])))
    store.record(*rows)
    return rows


@pytest.mark.parametrize("small_window", [0, 10**9], ids=["index-offsets", "window-functions"])
def test_percentiles_match_a_plain_computation(noisy, store, monkeypatch, small_window):
    monkeypatch.setattr(stats_sql, "SMALL_WINDOW", small_window)
    since = T0 + timedelta(hours=10)
    report = compute_stats(store, since=since, by=["tier", "model", "day", "agent", "provider", "tag"],
                           with_alerts=False)
    answers = [r for r in noisy if r.status == "ok" and r.source != "judge" and r.created_at >= since]

    def expect(rows, metric):
        values = [getattr(r, metric) for r in rows if getattr(r, metric) is not None]
        return {f"p{p}": nearest_rank(values, p) for p in (50, 95, 99)} if values else None

    def check(group, rows):
        for metric in ("latency_ms", "ttft_ms"):
            want = expect(rows, metric)
            got = {k: v for k, v in group[metric].items() if k != "mean"}
            assert got == (want or {"p50": None, "p95": None, "p99": None}), metric

    check(report["totals"], answers)
    for tier, group in report["by_tier"].items():
        check(group, [r for r in answers if r.tier == tier])
    for label, group in report["by_model"].items():
        check(group, [r for r in answers if f"{r.provider}:{r.model}" == label])
    for provider, group in report["by_provider"].items():
        check(group, [r for r in answers if r.provider == provider])
    for day, group in report["by_day"].items():
        check(group, [r for r in answers if r.created_at.strftime("%Y-%m-%d") == day])
    check(report["by_agent"]["ci"], [r for r in answers if r.agent == "ci"])
    check(report["by_agent"]["(none)"], [r for r in answers if r.agent is None])
    check(report["by_tag"]["y"], [r for r in answers if "y" in r.tags])


def test_rank_is_nearest_rank():
    assert [stats_sql.rank(p, 5) for p in (50, 95, 99)] == [3, 5, 5]
    assert stats_sql.rank(50, 1) == 1 and stats_sql.rank(1, 1000) == 10


def plan(store, query, params=None) -> str:
    with store.read() as conn:
        compiled = query if isinstance(query, str) else str(query.compile(conn, compile_kwargs={"literal_binds": True}))
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled, params or ()).all()
    return " | ".join(row[-1] for row in rows)


def test_one_scan_of_the_cube_index_and_no_sort(store):
    """The speed of stats at scale rests on these plans (benchmarks/stats_scale.py has the figures)."""
    since = T0 - timedelta(days=7)
    for dims in (["tier", "model"], ["day"], ["agent"], ["tag"], ["tag", "tier"]):
        cells = stats_sql.cube(stats_sql.window(since, None), dims) if stats_sql._needs_cube(dims) else None
        tag_cells = stats_sql.tag_cube(since, None) if "tag" in dims else None
        found = plan(store, stats_sql.fold(cells, dims, tag_cells=tag_cells))
        if cells is not None:
            assert "COVERING INDEX ix_attempts_cube" in found, (dims, found)
            assert "TEMP B-TREE FOR GROUP BY" not in found.split("SCAN cells")[0], (dims, found)
        if tag_cells is not None:  # tagged cells from m008's index, untagged from the cube; neither sorted
            making = found.split("MATERIALIZE tag_cells")[1].split("SCAN tag_cells")[0]
            assert "COVERING INDEX ix_attempt_tags_cube" in making and "COVERING INDEX ix_attempts_untagged" in making
            assert "TEMP B-TREE" not in making and "json_each" not in found, found
    assert "MATERIALIZE cells" not in plan(store, stats_sql.fold(None, ["tag"], tag_cells=tag_cells))


def test_percentile_offsets_read_the_partial_indexes(store):
    statements = []

    class Spy:
        dialect = type("D", (), {"name": "sqlite"})()

        def execute(self, query, params):
            statements.append(str(query))
            return type("R", (), {"scalar": lambda self: None})()

    for dim in ("total", "tier", "model", "provider", "agent", "day"):
        stats_sql._by_offsets(Spy(), dim, "latency_ms", T0, None, {("k",) * len(stats_sql._INDEX_KEYS[dim]): 1000})
    stats_sql._by_offsets(Spy(), "tag", "latency_ms", T0, None, {("a",): 1000, (None,): 1000})
    for statement in statements:
        found = plan(store, statement.replace(":k0", "'a'").replace(":k1", "'b'").replace(":since", "'2026'")
                     .replace(":offset", "1"))
        assert any(f"INDEX ix_{table}_latency" in found for table in ("attempts", "attempt_tags")), found
        assert "TEMP B-TREE" not in found, found
    assert "ix_attempt_tags_latency" in " ".join(statements) and "ix_attempts_latency_untagged" in " ".join(statements)
    assert len(statements) == 8 * 3


# ---------------------------------------------------------------- tags (m008's attempt_tags)


def tagged_rows(seed: int = 8) -> list[Attempt]:
    """Requests with retries, fallbacks, escalations and judge calls; tags repeated, reordered, absent."""
    rng = random.Random(seed)
    rows = []
    for i in range(400):
        tags = rng.choice([[], [], ["x"], ["x", "y"], ["y", "x", "y"], ["z"], ["x", "z"]])
        first = make(id=f"a{i:04d}", request_id=f"r{i:04d}", created_at=T0 + timedelta(hours=rng.randrange(0, 72)),
                     tier=rng.choice(["cheap", "premium"]), latency_ms=float(rng.randrange(50, 5000)),
                     ttft_ms=rng.choice([None, float(rng.randrange(10, 900))]),
                     status=rng.choice(["ok"] * 8 + ["error", "skipped"]), source=rng.choice(["ask"] * 9 + ["judge"]),
                     cost_micros=rng.choice([None, rng.randrange(0, 5000)]), confidence=rng.random(),
                     input_tokens=rng.randrange(1, 500), score=rng.random(), tags=tags,
                     cache_kind=rng.choice([None] * 9 + ["exact"]))
        rows.append(first)
        if rng.random() < 0.3:
            rows.append(make(id=f"b{i:04d}", request_id=first.request_id, parent_id=first.id,
                             step=rng.choice(["retry", "fallback", "escalation"]), tags=tags,
                             created_at=first.created_at + timedelta(seconds=5),
                             latency_ms=float(rng.randrange(50, 900))))
    return rows


def expected_by_tag(rows: list[Attempt], since: datetime) -> dict[str, dict]:
    """The by-tag figures computed in plain Python: an attempt counts once under each distinct tag."""
    rows = [r for r in rows if r.created_at >= since]
    fallback = {r.request_id for r in rows if r.step == "fallback"}
    escalated = {r.request_id for r in rows if r.step == "escalation"}
    groups = {tag: [r for r in rows if tag in r.tags] for tag in ("x", "y", "z")}
    groups["(untagged)"] = [r for r in rows if not r.tags]
    out = {}
    for label, members in groups.items():
        firsts = [r for r in members if r.source != "judge" and r.step == "first"]
        answers = [r for r in members if r.status == "ok" and r.source != "judge"]
        latencies = [r.latency_ms for r in answers if r.latency_ms is not None]
        out[label] = {
            "attempts": len(members), "requests": len(firsts), "errors": sum(r.status == "error" for r in members),
            "input_tokens": sum(r.input_tokens or 0 for r in members),
            "cost_usd": f"{sum(r.cost_micros or 0 for r in members) / 1e6:.6f}",
            "fallbacks": sum(r.request_id in fallback for r in firsts),
            "escalations": sum(r.request_id in escalated for r in firsts),
            "cache_hits": sum(r.cache_kind is not None for r in answers),
            "latency_ms": {"mean": round(sum(latencies) / len(latencies), 1),
                           **{f"p{p}": nearest_rank(latencies, p) for p in (50, 95, 99)}},
        }
    return out


def record_half_by_batch(store, rows: list[Attempt]) -> None:
    """Half through Store.record, half through the batch's Committer: both write tag rows."""
    store.record(*rows[: len(rows) // 2])
    commit = Committer(store)
    try:
        commit([{name: getattr(r, name) for name in ATTEMPTS.c.keys()} for r in rows[len(rows) // 2:]], [])
    finally:
        commit.close()


def by_tag(store, since: datetime) -> dict[str, dict]:
    report = compute_stats(store, since=since, by=["tag", "tier"], with_alerts=False)
    keys = ("attempts", "requests", "errors", "input_tokens", "cost_usd", "fallbacks", "escalations", "cache_hits")
    return {label: {**{k: group[k] for k in keys}, "latency_ms": group["latency_ms"]}
            for label, group in report["by_tag"].items()}


@pytest.mark.parametrize("small_window", [0, 10**9], ids=["index-offsets", "window-functions"])
def test_by_tag_matches_a_plain_computation(store, monkeypatch, small_window):
    monkeypatch.setattr(stats_sql, "SMALL_WINDOW", small_window)
    rows = tagged_rows()
    record_half_by_batch(store, rows)
    since = T0 + timedelta(hours=12)
    assert by_tag(store, since) == expected_by_tag(rows, since)
    # alone, the tag cells make the totals too (lead rows and untagged attempts): the same totals
    alone, with_tier = (compute_stats(store, since=since, by=by, with_alerts=False)
                        for by in (["tag"], ["tag", "tier"]))
    assert alone["totals"] == with_tier["totals"] == compute_stats(store, since=since, with_alerts=False)["totals"]
    assert alone["by_tag"] == with_tier["by_tag"] and alone["totals"]["fallbacks"] > 0
    with store.read() as conn:  # one row per attempt and distinct tag, the attempt's columns copied
        stored = conn.execute(text(f"SELECT attempt_id, tag, lead, {', '.join(COPIED)} FROM attempt_tags")).all()
        columns = [column["name"] for column in inspect(conn).get_columns("attempt_tags")]
    assert columns == list(ATTEMPT_TAGS.c.keys())  # the mapping in store/tags.py is m008's table
    assert len(stored) == sum(len(set(r.tags)) for r in rows)
    row_of = {r.id: to_row(r) for r in rows}
    for attempt_id, tag, lead, *copied in stored:
        assert tag in row_of[attempt_id]["tags"] and lead == (tag == min(row_of[attempt_id]["tags"]))
        want = [row_of[attempt_id][name] for name in COPIED]
        want[0] = want[0].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert copied == want


def test_m008_backfills_the_tags_of_an_existing_ledger(tmp_path, store):
    """A ledger written before m008: the migration makes the same rows the writers would have."""
    rows = tagged_rows(seed=9)
    engine = make_engine(tmp_path / "old.db")
    before = [fn for fn in MIGRATIONS if fn.__name__ < "m008"]
    apply_migrations(engine, before)
    with engine.begin() as conn:
        conn.execute(insert(ATTEMPTS), [to_row(r) for r in rows])
    assert apply_migrations(engine)[0] == "m008_attempt_tags"
    engine.dispose()
    record_half_by_batch(store, rows)
    query = "SELECT * FROM attempt_tags ORDER BY attempt_id, tag"
    with open_store(tmp_path / "old.db") as old, old.read() as conn, store.read() as new_conn:
        assert conn.execute(text(query)).all() == new_conn.execute(text(query)).all()
        assert conn.execute(text("SELECT COUNT(*) FROM attempt_tags")).scalar_one() > 0
    with open_store(tmp_path / "old.db") as old:
        assert by_tag(old, T0) == by_tag(store, T0) == expected_by_tag(rows, T0)


# ---------------------------------------------------------------- the command


def test_stats_command_breakdowns_and_alerts(store, monkeypatch):
    monkeypatch.setenv("ROUTECLI_DB", str(store.engine.url.database))
    linked(store)
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO alerts VALUES ('al1', '2026-03-02T10:00:00.000000Z', 'error_rate', "
                          "'critical', 'openai:nano failed 60% of 40 calls', '{}', 'k', NULL)"))
    report = json.loads(runner.invoke(app, ["stats", "--json", "--by", "day,tag"]).stdout)
    assert report["by"] == ["day", "tag"] and "by_tier" not in report
    assert report["alerts"]["open"] == 1 and report["alerts"]["latest"][0]["id"] == "al1"
    shown = runner.invoke(app, ["stats", "--by", "agent"])
    assert shown.exit_code == 0 and "ci" in shown.stdout and "(none)" in shown.stdout
    assert "1 open alert(s)" in shown.stdout and "openai:nano failed 60%" in shown.stdout
    assert "p99" in shown.stdout and "escalated" in shown.stdout
    bad = runner.invoke(app, ["stats", "--by", "week"])
    assert bad.exit_code == 2 and "choose from" in bad.stderr
