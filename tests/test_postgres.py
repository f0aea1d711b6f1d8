"""The shared ledger on a real PostgreSQL server: every command, the same figures as SQLite,
several processes at once (no lost rows, budgets and breakers never overshot), `db copy`.

The server comes from tests/pgserver.py (a throwaway cluster, or $ROUTECLI_TEST_PG); without
one these tests skip, except in CI (ROUTECLI_REQUIRE_PG=1), where they fail.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import inspect, make_url, text
from typer.testing import CliRunner

import pgserver
from routecli.cli import app
from routecli.store import MIGRATIONS, Attempt, open_store, sha256_text

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()
pg_admin, pg_url = pgserver.pg_admin, pgserver.pg_url  # the fixtures
PRICES = ('[prices."openai:gpt-5.4-nano"]\ninput_mtok = 1000\noutput_mtok = 1000\n'
          '[prices."openai:gpt-5.4-mini"]\ninput_mtok = 1000\noutput_mtok = 1000\n')


def run(*args: str):
    return runner.invoke(app, list(args))


def ok(*args: str):
    result = run(*args)
    assert result.exit_code == 0, (args, result.output)
    return result


def add_config(home: Path, extra: str) -> None:
    path = home / "config.toml"
    path.write_text((path.read_text() if path.exists() else "") + "\n" + extra)


def spawn(*args: str) -> subprocess.Popen:
    """A separate routecli process (or `-c CODE` script) sharing this test's environment."""
    argv = [sys.executable, *(args if args[0] == "-c" else ("-m", "routecli", *args))]
    return subprocess.Popen(argv, cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(processes: list[subprocess.Popen], timeout: float = 120) -> list[tuple[int, str, str]]:
    outputs = [p.communicate(timeout=timeout) for p in processes]
    return [(p.returncode, out, err) for p, (out, err) in zip(processes, outputs)]


def rows(url: str, sql: str) -> list[tuple]:
    """Read PostgreSQL directly (not through routecli): what really landed on the server."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        return conn.execute(sql).fetchall()


def prompts(path: Path, count: int, **extra) -> Path:
    path.write_text("".join(json.dumps({"id": f"id-{i}", "prompt": f"id-{i} hello [[delay=0.02]]", **extra}) + "\n"
                            for i in range(count)))
    return path


# ---------------------------------------------------------------- schema


def test_every_migration_runs_on_postgres_and_gives_sqlite_s_schema(pg_url, tmp_path):
    migrated = ok("db", "migrate", "--json")
    assert json.loads(migrated.stdout)["applied"] == [fn.__name__ for fn in MIGRATIONS]
    assert "up to date" in ok("db", "migrate").stdout  # and nothing twice
    with open_store(pg_url) as pg, open_store(tmp_path / "lite.db") as lite:
        assert pg.migrations() == lite.migrations()
        shapes = []
        for store in (pg, lite):
            found = inspect(store.engine)
            shapes.append({name: ({c["name"]: c["nullable"] for c in found.get_columns(name)},
                                  found.get_pk_constraint(name)["constrained_columns"])
                           for name in found.get_table_names()})
        assert shapes[0] == shapes[1] and "attempts" in shapes[0]
    # m006's expression and partial indexes exist on PostgreSQL too, with their WHERE clauses
    indexes = dict(rows(pg_url, "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'attempts'"))
    assert "substr(created_at, 1, 10)" in indexes["ix_attempts_cube"]
    assert "WHERE" in indexes["ix_attempts_latency_tier"] and "WHERE" in indexes["ix_attempts_followups"]


def test_a_failing_migration_leaves_no_trace_on_postgres(pg_url):
    from routecli.errors import StoreError
    from routecli.store import apply_migrations
    from routecli.store.engine import make_engine

    def m999_breaks(conn):
        conn.exec_driver_sql("CREATE TABLE oops (id TEXT PRIMARY KEY)")
        conn.exec_driver_sql("SELECT no_such_column FROM oops")

    engine = make_engine(pg_url)
    try:
        with pytest.raises(StoreError, match="m999_breaks failed and was rolled back"):
            apply_migrations(engine, [*MIGRATIONS, m999_breaks])
        assert "oops" not in inspect(engine).get_table_names()  # PostgreSQL DDL is transactional
        assert len(rows(pg_url, "SELECT name FROM _migrations")) == len(MIGRATIONS)
    finally:
        engine.dispose()


def test_migrations_over_a_ledger_with_rows_give_the_same_tables_on_both(pg_url, tmp_path):
    """Later migrations that backfill from existing attempts (m008's tag rows) do the same on both."""
    from sqlalchemy import insert

    from routecli.store import apply_migrations
    from routecli.store.engine import make_engine
    from routecli.store.models import ATTEMPTS, COLUMNS, to_row

    contents = []
    for where in (tmp_path / "lite.db", pg_url):
        engine = make_engine(where)
        try:
            done = 0  # the first migrations, up to the one that completes today's attempts columns
            while not (inspect(engine).has_table("attempts")
                       and set(COLUMNS) <= {c["name"] for c in inspect(engine).get_columns("attempts")}):
                done += 1
                apply_migrations(engine, MIGRATIONS[:done])
            with engine.begin() as conn:
                conn.execute(insert(ATTEMPTS), [to_row(a) for a in sample_attempts(120)])
            assert apply_migrations(engine) == [fn.__name__ for fn in MIGRATIONS[done:]]
            with engine.connect() as conn:
                found = inspect(conn)
                contents.append({name: conn.execute(text(f"SELECT * FROM {name} ORDER BY 1, 2")).all()
                                 for name in found.get_table_names() if name != "_migrations"})
        finally:
            engine.dispose()
    assert contents[0] == contents[1]
    assert len(contents[0]["attempts"]) == 120


# ---------------------------------------------------------------- every command


def test_ask_batch_and_every_reading_command_work_on_postgres(vendor, pg_url, isolated_home, tmp_path):
    add_config(isolated_home, PRICES + "[budgets]\ndaily = 100\n")
    asked = json.loads(ok("ask", "--json", "--model", "openai:gpt-5.4-nano", "--tag", "t1", "hello").stdout)
    ok("ask", "--model", "openai:gpt-5.4-nano", "--temperature", "0", "what is 2+2")
    again = ok("ask", "--model", "openai:gpt-5.4-nano", "--temperature", "0", "what is 2+2")
    assert "from the cache" in again.stderr
    out = tmp_path / "out.jsonl"
    ok("batch", str(prompts(tmp_path / "in.jsonl", 6, model="openai:gpt-5.4-mini")), "-o", str(out), "-c", "3")
    assert [line["status"] for line in map(json.loads, out.read_text().splitlines())] == ["ok"] * 6
    assert rows(pg_url, "SELECT COUNT(*) FROM attempts") == [(9,)]
    assert rows(pg_url, "SELECT COUNT(*), MIN(status) FROM run_lines") == [(6, "ok")]
    assert not list(isolated_home.glob("*.db"))  # nothing went to a SQLite file instead
    run_id = json.loads(ok("runs", "--json").stdout)[0]["id"]
    ok("runs", "show", run_id)
    stats = json.loads(ok("stats", "--json", "--by", "tier,model,tag,day").stdout)
    assert stats["totals"]["attempts"] == 9 and stats["totals"]["cache_hits"] == 1 and "t1" in stats["by_tag"]
    assert len(ok("export", "--csv").stdout.splitlines()) == 10
    assert len(ok("export", "--jsonl", "--where", "tag=t1").stdout.splitlines()) == 1
    daily = [b for b in json.loads(ok("budget", "--json").stdout)["limits"] if b["period"] == "daily"]
    assert daily[0]["spent_micros"] == rows(pg_url, "SELECT SUM(cost_micros) FROM attempts")[0][0] > 0
    for args in (["dashboard", "--json"], ["health", "--json"], ["alerts", "check", "--json"], ["alerts", "--json"],
                 ["insights", "--json"], ["cache", "stats", "--json"], ["feedback", asked["id"], "--score", "1"],
                 ["ab", "start", "exp", "-v", "a=rules", "-v", "b=rules"]):
        ok(*args)
    ok("ask", "Say hello in the test")  # routed by a variant (a forced model is in no test)
    variants = json.loads(ok("ab", "report", "exp", "--json").stdout)["variants"]
    assert sum(v["requests"] for v in variants.values()) == 1


# ---------------------------------------------------------------- the same figures as SQLite


def sample_attempts(count: int = 400) -> list[Attempt]:
    """Varied rows: every status, judge calls, fallbacks and escalations, cache hits, unknown
    prices, agents, several tags (one not ASCII), three days."""
    rng, start, made = random.Random(8), datetime(2026, 3, 1, 9, tzinfo=timezone.utc), []
    for i in range(count):
        status = rng.choices(["ok", "error", "skipped", "dry-run"], [8, 2, 1, 1])[0]
        answered = status == "ok"
        follows = made[-1] if made and i % 7 == 0 else None
        cached = answered and i % 11 == 0
        made.append(Attempt(
            id=f"A{i:05d}", request_id=follows.request_id if follows else f"A{i:05d}",
            parent_id=follows.id if follows else None, step=rng.choice(["fallback", "escalation"]) if follows else "first",
            created_at=start + timedelta(minutes=11 * i, microseconds=i), source="judge" if i % 13 == 0 else
            rng.choice(["ask", "batch"]), prompt_hash=sha256_text(str(i)), prompt=f"prompt {i}", agent=rng.choice(
                [None, "ci", "bot"]), tags=rng.sample(["prod", "ci", "x y", "ünï"], rng.randint(0, 2)),
            classifier="rules", classifier_version="1", score=round(rng.random(), 4),
            tier=rng.choice(["cheap", "standard", "premium"]), provider="openai",
            model=rng.choice(["gpt-5.4-nano", "gpt-5.4-mini"]), phase="rules", status=status,
            error_kind="server" if status == "error" else None, input_tokens=rng.randint(5, 900) if answered else None,
            output_tokens=rng.randint(1, 400) if answered else None,
            latency_ms=round(rng.uniform(40, 4000), 3) if status in ("ok", "error") else None,
            ttft_ms=round(rng.uniform(10, 900), 3) if answered else None,
            cost_micros=None if not answered or i % 9 == 0 else (0 if cached else rng.randint(1, 6000)),
            baseline_cost_micros=rng.randint(500, 30000) if answered else None,
            confidence=round(rng.random(), 3) if answered else None,
            cache_kind="exact" if cached else None, saved_micros=rng.randint(1, 900) if cached else None))
    return made


def test_stats_and_exports_give_the_same_figures_on_both_databases(pg_url, tmp_path):
    from routecli.analytics.stats import compute_stats
    from routecli.analytics.stats_sql import DIMENSIONS, rank

    attempts = sample_attempts()
    lite_path = tmp_path / "lite.db"
    reports = []
    for where in (lite_path, pg_url):
        with open_store(where) as store:
            store.record(*attempts)
            since, until = datetime(2026, 3, 1, 20, tzinfo=timezone.utc), datetime(2026, 3, 3, tzinfo=timezone.utc)
            reports.append([compute_stats(store, by=list(DIMENSIONS)),
                            compute_stats(store, by=["tag", "day"], since=since, until=until)])
    assert reports[0] == reports[1]
    everything = reports[1][0]
    assert everything["totals"]["attempts"] == len(attempts) and everything["totals"]["escalations"] > 0
    assert set(everything["by_tag"]) == {"prod", "ci", "x y", "ünï", "(untagged)"}
    latencies = sorted(a.latency_ms for a in attempts if a.status == "ok" and a.source != "judge")
    assert everything["totals"]["latency_ms"]["p95"] == round(latencies[rank(95, len(latencies)) - 1], 1)
    for args in (["--jsonl"], ["--csv", "--where", "tag=ünï"], ["--json", "--since", "2026-03-02"]):
        lite, pg = (ok("export", *args, "--db", str(where)).stdout for where in (lite_path, pg_url))
        assert lite == pg and len(lite.splitlines()) > 10


# ---------------------------------------------------------------- several processes at once


def test_four_batch_processes_writing_at_once_lose_no_row(vendor, pg_url, tmp_path):
    """They also migrate the fresh database at once: one applies each migration, the others wait."""
    files = [prompts(tmp_path / f"in{n}.jsonl", 40) for n in range(4)]
    for n, path in enumerate(files):  # distinct prompts, so distinct input hashes and runs
        path.write_text(path.read_text().replace("hello", f"hello from {n}"))
    done = finish([spawn("batch", str(path), "-o", str(tmp_path / f"out{n}.jsonl"), "-c", "8")
                   for n, path in enumerate(files)])
    assert [code for code, _, _ in done] == [0] * 4, done
    assert rows(pg_url, "SELECT COUNT(*), COUNT(DISTINCT run_id) FROM attempts WHERE status = 'ok'") == [(160, 4)]
    assert rows(pg_url, "SELECT status, COUNT(*) FROM run_lines GROUP BY status") == [("ok", 160)]
    assert rows(pg_url, "SELECT COUNT(*) FROM run_lines l JOIN attempts a ON a.id = l.attempt_id") == [(160,)]


RESERVE = textwrap.dedent("""
    import sys, time
    from datetime import datetime, timezone
    from routecli.guard.budget import Scope
    from routecli.store import budgets, open_store
    store = open_store(sys.argv[1])
    scope = Scope(key="total", label="total limit", limit_micros=1_000_000, period="total")
    while time.time() < float(sys.argv[2]):
        time.sleep(0.001)
    held = 0
    while budgets.reserve(store, [scope], 7_000, datetime.now(timezone.utc), 0.9).hold is not None:
        held += 1
    print(held)
""")


@pytest.mark.parametrize("counter", ["created by the race", "already there"])
def test_budget_reservations_from_four_processes_never_pass_the_limit(pg_url, counter):
    from routecli.guard.budget import Scope
    from routecli.store import budgets

    with open_store(pg_url) as store:  # migrated first: this test is about the reservations alone
        if counter == "already there":  # then only the check-then-hold race is left
            total = Scope(key="total", label="total limit", limit_micros=1_000_000, period="total")
            budgets.standings(store, [total], datetime.now(timezone.utc))
    go = str(time.time() + 2)  # every process starts reserving at the same moment
    done = finish([spawn("-c", RESERVE, pg_url, go) for _ in range(4)])
    held = [int(out) for code, out, err in done if code == 0]
    assert len(held) == 4, done
    assert sum(held) == 1_000_000 // 7_000  # never past the limit, and no reservation lost either
    assert sum(1 for n in held if n) >= 2  # they did race
    assert rows(pg_url, "SELECT reserved_micros FROM budget_spend WHERE key = 'total'") == [(sum(held) * 7_000,)]
    assert rows(pg_url, "SELECT COUNT(*) FROM alerts WHERE kind = 'budget'") == [(1,)]  # warned once, not per process


def test_threads_reserving_at_once_share_transactions_and_never_pass_the_limit(pg_url, monkeypatch):
    """serve reserves on threads (serve/relay.py): the calls waiting while a group's transaction runs
    go into the next one together, each checked against the counter as the ones before it left it."""
    import threading

    from routecli.guard.budget import Scope
    from routecli.store import budgets

    sizes, real = [], budgets._reserve_group

    def counted(engine, asks):
        sizes.append(len(asks))
        if len(sizes) == 1:
            time.sleep(0.3)  # the other threads queue up meanwhile
        return real(engine, asks)

    monkeypatch.setattr(budgets, "_reserve_group", counted)
    scope = Scope(key="total", label="total limit", limit_micros=100_000, period="total")
    held: list = []

    def reserve_until_refused(store):
        while (made := budgets.reserve(store, [scope], 7_000, datetime.now(timezone.utc), 0.99)).hold is not None:
            held.append(made.hold)

    def on_threads(work, args_list):
        threads = [threading.Thread(target=work, args=args) for args in args_list]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

    with open_store(pg_url) as store:
        on_threads(reserve_until_refused, [(store,)] * 8)
        assert len(held) == 100_000 // 7_000  # never past the limit, none lost
        assert max(sizes) > 1 and len(sizes) < len(held) + 8  # they did share transactions
        assert rows(pg_url, "SELECT reserved_micros FROM budget_spend WHERE key = 'total'") == [(len(held) * 7_000,)]
        on_threads(lambda hold: budgets.release(store, hold), [(hold,) for hold in held])
        budgets.release(store, held[0])  # a hold freed twice is taken off once
    assert rows(pg_url, "SELECT reserved_micros FROM budget_spend WHERE key = 'total'") == [(0,)]
    assert rows(pg_url, "SELECT COUNT(*) FROM budget_holds") == [(0,)]


def test_serve_on_postgres_keeps_store_work_off_the_loop_and_frees_each_hold_with_its_row(vendor, pg_url,
                                                                                          isolated_home):
    import asyncio

    from test_serve import ask, in_process, prompt

    add_config(isolated_home, PRICES + "[budgets]\ndaily = 100.0\n")

    async def body(relay):
        requests = [prompt(f"hello {n} [[delay=0.05]]", model="openai:gpt-5.4-nano") for n in range(16)]
        return relay._store.threaded, await asyncio.gather(*(ask(relay, request) for request in requests))

    on_threads, outcomes = in_process(body)
    assert on_threads and [outcome.status for outcome in outcomes] == ["ok"] * 16
    [(count, spent)] = rows(pg_url, "SELECT COUNT(*), SUM(cost_micros) FROM attempts WHERE source = 'serve'")
    assert count == 16 and spent > 0
    assert rows(pg_url, "SELECT COUNT(*) FROM budget_holds") == [(0,)]  # each freed with its row's commit
    assert rows(pg_url, "SELECT spent_micros, reserved_micros FROM budget_spend WHERE key LIKE 'day:%'") == \
        [(spent, 0)]


def test_serve_frees_a_hold_made_for_a_request_cancelled_while_it_was_reserved(vendor, pg_url, isolated_home):
    import asyncio

    from test_serve import ask, in_process, prompt

    add_config(isolated_home, PRICES + "[budgets]\ndaily = 100.0\n")

    async def body(relay):
        real = relay.policy.reserve

        def slow(journey, decision):  # the client goes away while this runs on its thread
            time.sleep(0.3)
            return real(journey, decision)

        relay.policy.reserve = slow
        task = asyncio.ensure_future(ask(relay, prompt("hello", model="openai:gpt-5.4-nano")))
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.sleep(0.4)  # the reservation finishes meanwhile
        await relay.flush()
        return task.cancelled()

    assert in_process(body)
    assert rows(pg_url, "SELECT COUNT(*) FROM budget_holds") == [(0,)]
    assert rows(pg_url, "SELECT reserved_micros FROM budget_spend WHERE key LIKE 'day:%'") == [(0,)]


def test_a_ledger_that_went_away_is_one_line_from_the_guards_not_a_traceback(pg_admin, isolated_home):
    """serve and batch call the guards for as long as they run: a database that stops answering
    meanwhile is a StoreError naming the fix (serve answers it; it had dropped the connection)."""
    from routecli.config import load_config
    from routecli.domain import Message, ModelRef, Request
    from routecli.errors import StoreError
    from routecli.guard.gate import Gate

    add_config(isolated_home, PRICES + "[budgets]\ndaily = 100.0\n")
    name, url = pgserver.create_database(pg_admin)
    store = open_store(url)
    gate = Gate(load_config(), store)
    request, ref = Request((Message("user", "hello"),)), ModelRef("openai", "gpt-5.4-nano")
    gate.release(gate.reserve(request, ref).hold)  # it works while the database is there
    pgserver.drop_database(pg_admin, name)  # WITH (FORCE): the pool's connections are cut too
    for call in (lambda: gate.reserve(request, ref), lambda: gate.report(ref, "server")):
        with pytest.raises(StoreError, match=r"^Cannot (use|read) the ledger at postgresql://.*; check the database") as info:
            call()
        assert pgserver.PASSWORD not in str(info.value) and "\n" not in str(info.value)
    store.close()


def test_two_batches_share_one_daily_budget_and_never_overshoot_it(vendor, pg_url, isolated_home, tmp_path):
    add_config(isolated_home, PRICES + '[budgets]\ndaily = 0.5\non_exceed = "refuse"\n')
    open_store(pg_url).close()
    files = [prompts(tmp_path / f"in{n}.jsonl", 60, model="openai:gpt-5.4-nano", max_tokens=10) for n in range(2)]
    for n, path in enumerate(files):
        path.write_text(path.read_text().replace("hello", f"hello {n}"))
    # four at a time each: at 16, the holds of whichever run started first (each a call's worst
    # case, above what it really costs) could fill the whole budget, and on a loaded machine the
    # other run never found room for one call (seen once: 13 answered, all by one run)
    done = finish([spawn("batch", str(path), "-o", str(tmp_path / f"o{n}.jsonl"), "-c", "4")
                   for n, path in enumerate(files)])
    assert [code for code, _, _ in done] == [1, 1], done  # both had lines refused
    [(spent, answered, refused, runs_answering)] = rows(pg_url, (
        "SELECT SUM(cost_micros), SUM(CASE WHEN status = 'ok' THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN error_kind = 'budget' THEN 1 ELSE 0 END), "
        "COUNT(DISTINCT CASE WHEN status = 'ok' THEN run_id END) FROM attempts"))
    assert 0 < spent <= 500_000 and answered + refused == 120 and runs_answering == 2
    assert rows(pg_url, "SELECT COUNT(*) FROM budget_holds") == [(0,)]


def test_a_writer_stalled_inside_its_transaction_is_cut_off_and_the_others_go_on(pg_url, monkeypatch):
    from sqlalchemy.exc import DBAPIError

    from routecli.store import engine as store_engine

    monkeypatch.setattr(store_engine, "WRITE_IDLE_LIMIT_S", 1)
    with open_store(pg_url) as store:
        stalled = store_engine.immediate(store.engine.connect())
        stalled.begin()  # holds the write lock, then does nothing (a stopped process)
        started = time.monotonic()
        store.record(sample_attempts(1)[0])  # waits for the lock until the server cuts the other off
        assert 0.8 < time.monotonic() - started < 15
        with pytest.raises(DBAPIError, match="idle-in-transaction timeout"):
            stalled.execute(text("SELECT 1"))
        stalled.close()
        assert store.count() == 1


def test_a_writer_that_waits_too_long_for_the_lock_gives_up_with_one_line(pg_url, monkeypatch):
    from routecli.errors import StoreError
    from routecli.store import engine as store_engine

    monkeypatch.setattr(store_engine, "WRITE_LOCK_WAIT_S", 0.5)
    with open_store(pg_url) as store, store_engine.write_transaction(store.engine):
        with pytest.raises(StoreError, match="lock timeout.*nothing from this call was recorded"):
            store.record(sample_attempts(1)[0])


def test_tag_budgets_read_the_same_spend_on_both_databases(pg_url, tmp_path):
    """The counter's first value is a LIKE over the JSON tags: % and _ in a tag are literal."""
    from routecli.guard.budget import Scope
    from routecli.store import budgets

    tagged = sample_attempts(3)
    for attempt, tags, cost in zip(tagged, (["50%_off"], ["50x_off", "a"], ["5"]), (100, 20, 3)):
        attempt.tags, attempt.status, attempt.cost_micros = tags, "ok", cost
    scope = Scope(key="tag:50%_off:total", label="tag", limit_micros=10**9, period="total", tag="50%_off")
    for where in (tmp_path / "lite.db", pg_url):
        with open_store(where) as store:
            store.record(*tagged)
            assert budgets.standings(store, [scope], datetime.now(timezone.utc))[0].spent == 100


BREAK = textwrap.dedent("""
    import sys, time
    from datetime import datetime, timezone
    from routecli.config_guards import BreakerConfig
    from routecli.store import breakers, open_store
    store = open_store(sys.argv[1])
    while time.time() < float(sys.argv[2]):
        time.sleep(0.001)
    for _ in range(25):
        breakers.report(store, "openai:gpt-5.4-nano", "server", BreakerConfig(failures=1000), datetime.now(timezone.utc))
""")


def test_breaker_failures_reported_by_four_processes_are_all_counted(pg_url):
    open_store(pg_url).close()
    go = str(time.time() + 2)
    done = finish([spawn("-c", BREAK, pg_url, go) for _ in range(4)])
    assert [code for code, _, _ in done] == [0] * 4, done
    assert rows(pg_url, "SELECT consecutive FROM breakers") == [(100,)]


def test_a_breaker_opened_by_one_process_stops_another(vendor, pg_url, isolated_home):
    add_config(isolated_home, "[breaker]\nfailures = 2\ncooldown = 60\n")
    for _ in range(2):
        assert finish([spawn("ask", "--tier", "cheap", "x [[status=503 only=gpt-5.4-nano]]")])[0][0] == 0
    [(code, out, err)] = finish([spawn("ask", "--tier", "cheap", "while open")])
    assert code == 0 and "echo: while open" in out
    assert rows(pg_url, "SELECT status, error_kind FROM attempts WHERE model = 'gpt-5.4-nano' "
                        "ORDER BY id DESC LIMIT 1") == [("skipped", "open_circuit")]
    assert rows(pg_url, "SELECT state FROM breakers") == [("open",)]


# ---------------------------------------------------------------- errors name the fix, never the password


def password_of(url: str) -> str:
    return make_url(url).password


def test_a_wrong_password_is_one_line_without_the_password(pg_admin):
    wrong = make_url(pg_admin).set(password="not-the-password-9f3").render_as_string(hide_password=False)
    result = run("stats", "--db", wrong)
    assert result.exit_code == 1
    assert "password authentication failed" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "not-the-password-9f3" not in result.output and password_of(pg_admin) not in result.output


@pytest.mark.parametrize("url, expected", [
    ("postgresql://u:hunter2secret@127.0.0.1:{port}/db", "Connection refused"),
    ("postgres://u:hunter2secret@127.0.0.1:{port}/db", "Connection refused"),
    ("postgresql://u@127.0.0.1:{port}/db?password=hunter2secret", "Connection refused"),
    ("postgresql://u:hunter2secret@host:notaport/db", "Bad database URL"),
    ("mysql://u:hunter2secret@host/db", "the ledger lives in SQLite or PostgreSQL"),
])
def test_bad_urls_and_unreachable_servers_are_one_line_without_the_password(url, expected):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    result = run("stats", "--db", url.format(port=port))
    assert result.exit_code == 1 and expected in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "hunter2secret" not in result.output
    assert time.monotonic() - started < 15


def test_a_missing_driver_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # what an install without [postgres] looks like
    result = run("stats", "--db", "postgresql://u:hunter2secret@127.0.0.1:5432/db")
    assert result.exit_code == 1 and 'pip install "routecli[postgres]"' in result.stderr
    assert "hunter2secret" not in result.output
