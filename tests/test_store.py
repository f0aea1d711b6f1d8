"""The ledger: migrations, transactions, concurrency, and the table/class contract."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import BigInteger, Float, Integer, String, inspect, text
from sqlalchemy.types import TypeDecorator

from routecli.errors import StoreError
from routecli.store import MIGRATIONS, Attempt, apply_migrations, open_store, sha256_text
from routecli.store.engine import make_engine, write_transaction
from routecli.store.schema_core import m001_attempts
from routecli.store.models import ATTEMPTS


def attempt(**fields) -> Attempt:
    values = dict(
        source="ask",
        prompt_hash=sha256_text("hello"),
        classifier="rules",
        classifier_version="1",
        score=0.25,
        tier="cheap",
        provider="openai",
        model="gpt-5.4-nano",
        phase="rules",
        status="ok",
    )
    values.update(fields)
    return Attempt(**values)


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "nested" / "dir" / "routecli.db"


@pytest.fixture
def store(db_path):
    with open_store(db_path) as store:
        yield store


def _tables(engine) -> set[str]:
    return set(inspect(engine).get_table_names())


# ---------------------------------------------------------------- migrations


def test_fresh_db_gets_every_migration_and_records_it(store, db_path):
    assert db_path.exists()
    assert store.migrations() == [fn.__name__ for fn in MIGRATIONS]
    with store.engine.connect() as conn:
        stamps = conn.execute(text("SELECT applied_at FROM _migrations")).scalars().all()
    for stamp in stamps:
        assert datetime.fromisoformat(stamp).utcoffset() == timedelta(0)
    assert {"attempts", "_migrations"} <= _tables(store.engine)


def test_reopening_applies_nothing_twice(db_path):
    open_store(db_path).close()
    engine = make_engine(db_path)
    try:
        assert apply_migrations(engine) == []
        with engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM _migrations")).scalar_one() == len(MIGRATIONS)
    finally:
        engine.dispose()


def _fails_after_ddl(conn):
    conn.exec_driver_sql("CREATE TABLE oops (id TEXT PRIMARY KEY)")
    conn.exec_driver_sql("CREATE INDEX ix_oops ON oops (id)")
    conn.exec_driver_sql("INSERT INTO oops (id) VALUES ('x')")
    raise RuntimeError("boom")


def _fails_on_bad_sql(conn):
    conn.exec_driver_sql("CREATE TABLE oops (id TEXT PRIMARY KEY)")
    conn.exec_driver_sql("ALTER TABLE attempts ADD COLUMN extra TEXT")
    conn.exec_driver_sql("CREATE TABLE THIS IS NOT SQL")


@pytest.mark.parametrize("bad", [_fails_after_ddl, _fails_on_bad_sql])
def test_failing_migration_rolls_back_completely(db_path, bad):
    engine = make_engine(db_path)
    try:
        with pytest.raises(StoreError, match=bad.__name__):
            apply_migrations(engine, [m001_attempts, bad])
        assert "oops" not in _tables(engine)
        assert "ix_oops" not in {ix["name"] for ix in inspect(engine).get_indexes("attempts")}
        assert "extra" not in {col["name"] for col in inspect(engine).get_columns("attempts")}
        with engine.connect() as conn:
            names = conn.execute(text("SELECT name FROM _migrations")).scalars().all()
        assert names == ["m001_attempts"]
    finally:
        engine.dispose()


def test_failing_first_migration_leaves_no_table(db_path):
    def m000_half(conn):
        m001_attempts(conn)
        raise RuntimeError("after the DDL")

    engine = make_engine(db_path)
    try:
        with pytest.raises(StoreError):
            apply_migrations(engine, [m000_half])
        assert _tables(engine) == {"_migrations"}
    finally:
        engine.dispose()


def test_ledger_from_a_newer_version_is_refused(db_path):
    open_store(db_path).close()
    engine = make_engine(db_path)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO _migrations VALUES ('m999_future', '2099-01-01T00:00:00+00:00')"))
    engine.dispose()
    with pytest.raises(StoreError, match="newer version"):
        open_store(db_path)


def _family(sa_type) -> str:
    sa_type = sa_type.impl if isinstance(sa_type, TypeDecorator) else sa_type
    for cls, name in ((BigInteger, "bigint"), (Integer, "integer"), (Float, "double"), (String, "text")):
        if isinstance(sa_type, cls):
            return name
    return type(sa_type).__name__


def test_model_columns_equal_migrated_table(store):
    migrated = {
        col["name"]: (_family(col["type"]), col["nullable"], bool(col["primary_key"]))
        for col in inspect(store.engine).get_columns("attempts")
    }
    model = {col.name: (_family(col.type), col.nullable, col.primary_key) for col in ATTEMPTS.columns}
    assert model == migrated
    assert "api_key" not in " ".join(model)


def test_indexes_cover_the_stats_queries(store):
    indexed = {tuple(ix["column_names"])[0] for ix in inspect(store.engine).get_indexes("attempts")}
    assert {"created_at", "tier", "provider"} <= indexed


# ---------------------------------------------------------------- connection settings


def test_every_connection_is_wal_with_busy_timeout_and_foreign_keys(store):
    with store.engine.connect() as one, store.engine.connect() as two:
        for conn in (one, two):
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_write_transaction_takes_the_write_lock_at_begin(store, db_path):
    # A deferred BEGIN that reads first cannot wait for the lock later; IMMEDIATE must hold it now.
    with write_transaction(store.engine):
        other = sqlite3.connect(db_path, timeout=0, isolation_level=None)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        finally:
            other.close()


def test_url_or_path(tmp_path):
    with open_store(f"sqlite:///{tmp_path / 'by-url' / 'x.db'}") as store:
        assert store.count() == 0
    assert (tmp_path / "by-url" / "x.db").exists()


@pytest.mark.parametrize("where", ["not a url://", "nosuchdriver://x/y"])
def test_bad_location_is_a_store_error(where):
    with pytest.raises(StoreError):
        open_store(where)


def test_directory_instead_of_file_is_a_store_error(tmp_path):
    with pytest.raises(StoreError, match="Cannot open the ledger"):
        open_store(tmp_path)


# ---------------------------------------------------------------- writing and reading


def test_record_and_get_round_trip(store):
    when = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=timezone(timedelta(hours=2)))
    row = attempt(
        created_at=when,
        tags=("work", "ü"),
        signals={"chars": 12, "code": True},
        reasons=["short prompt"],
        notes=["skipped tier cheap: no key for openai"],
        input_tokens=10,
        cost_micros=2**40,
        latency_ms=12.5,
    )
    [attempt_id] = store.record(row)
    got = store.get(attempt_id)
    assert got.request_id == attempt_id
    assert got.created_at == when and got.created_at.tzinfo == timezone.utc
    assert got.tags == ["work", "ü"] and got.signals == {"chars": 12, "code": True}
    assert got.notes == ["skipped tier cheap: no key for openai"]
    assert (got.input_tokens, got.cost_micros, got.latency_ms) == (10, 2**40, 12.5)
    assert got.prompt is None and got.answer is None
    assert store.get("nope") is None


def test_json_columns_take_lists_and_dicts_not_encoded_text(store):
    [attempt_id] = store.record(attempt(tags=("a",), signals={"n": 1}, notes=[]))
    got = store.get(attempt_id)
    assert (got.tags, got.signals, got.notes) == (["a"], {"n": 1}, [])
    with pytest.raises(StoreError):
        store.record(attempt(tags='["a"]'))  # would be stored as a string, then read back wrong


def test_ids_are_sortable_ulids(store):
    ids = [store.record(attempt())[0] for _ in range(5)]
    assert ids == sorted(ids) and all(len(i) == 26 for i in ids)


def test_record_is_all_or_nothing(store):
    good = attempt()
    broken = attempt(tier=None)  # NOT NULL column
    with pytest.raises(StoreError, match="nothing from this call was recorded"):
        store.record(good, broken)
    assert store.count() == 0
    assert store.record() == []


@pytest.mark.parametrize("field, value", [("status", "fine"), ("source", "cron")])
def test_record_rejects_unknown_status_or_source(store, field, value):
    with pytest.raises(ValueError, match=field):
        store.record(attempt(**{field: value}))
    assert store.count() == 0


def test_created_at_compares_across_offsets_and_refuses_naive(store):
    base = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
    plus5 = timezone(timedelta(hours=5))
    store.record(attempt(created_at=base.astimezone(plus5)), attempt(created_at=base + timedelta(seconds=1)))
    later = ATTEMPTS.c.created_at > base - timedelta(microseconds=1)
    with store.read() as conn:
        assert len(conn.execute(ATTEMPTS.select().where(later)).all()) == 2
    with pytest.raises(StoreError):
        store.record(attempt(created_at=datetime(2026, 1, 1)))


# ---------------------------------------------------------------- two processes

WRITER = textwrap.dedent(
    """
    import pathlib, sys, time
    from routecli.store import Attempt, open_store
    db, tag, go = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.001)
    store = open_store(db)  # both migrate the fresh ledger at once, too
    for i in range(200):
        store.record(Attempt(source="batch", run_id=tag, prompt_hash=str(i), classifier="rules",
                             classifier_version="1", score=0.5, tier="cheap", provider="p",
                             model="m", phase="rules", status="ok"))
    store.close()
    """
)


def test_two_processes_migrating_and_writing_at_once_lose_nothing(db_path, tmp_path):
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db_path), tag, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("a", "b")
    ]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        go.touch()
        for proc in procs:
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
    finally:
        for proc in procs:
            proc.kill() if proc.poll() is None else None
    with open_store(db_path) as store, store.read() as conn:
        counts = dict(conn.execute(text("SELECT run_id, COUNT(DISTINCT id) FROM attempts GROUP BY run_id")).all())
        assert store.migrations() == [fn.__name__ for fn in MIGRATIONS]
    assert counts == {"a": 200, "b": 200}


@pytest.mark.parametrize(
    "modules, forbidden",
    [
        # the ledger never talks to providers; genai-prices loads only when a price is needed
        ("routecli.store, routecli.analytics.stats, routecli.analytics.export", ("httpx", "routecli.providers", "genai_prices")),
        # pricing runs on every call and must stay cheap to import
        ("routecli.pricing", ("sqlmodel", "sqlalchemy", "genai_prices")),
    ],
)
def test_imports_stay_light(modules, forbidden):
    code = f"import sys, {modules}\nbad = [m for m in sys.modules if m.startswith({forbidden!r})]\nassert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- budget holds


def _spend(store, key):
    with store.read() as conn:
        return tuple(conn.execute(text("SELECT spent_micros, reserved_micros FROM budget_spend WHERE key = :k"),
                                  {"k": key}).one())


def test_reservations_in_one_group_are_checked_in_turn_against_what_the_earlier_ones_held(store):
    from routecli.guard.budget import Scope
    from routecli.store import budgets

    scope = Scope(key="total", label="total limit", limit_micros=25_000, period="total")
    now = datetime.now(timezone.utc)
    first, second, third = budgets._reserve_group(store.engine, [([scope], 10_000, now, 0.99)] * 3)
    assert first.hold is not None and second.hold is not None
    assert third.hold is None and third.refused.used == 20_000  # saw both holds before it
    assert _spend(store, "total") == (0, 20_000)
    budgets.release(store, first.hold)
    budgets.release(store, first.hold)  # freed twice, taken off once
    assert _spend(store, "total") == (0, 10_000)


def test_a_hold_abandoned_for_longer_than_its_life_is_dropped_by_a_later_reservation(store, monkeypatch):
    from routecli.guard.budget import Scope
    from routecli.store import budgets

    scope = Scope(key="total", label="total limit", limit_micros=15_000, period="total")
    now = datetime.now(timezone.utc)
    monkeypatch.setattr(budgets, "_last_expired", budgets.weakref.WeakKeyDictionary())
    old = budgets.reserve(store, [scope], 10_000, now - budgets.HOLD_TTL - timedelta(minutes=1), 0.99)
    assert old.hold is not None  # a process that died holding it
    monkeypatch.setattr(budgets, "_last_expired", budgets.weakref.WeakKeyDictionary())  # the next look is due
    assert budgets.reserve(store, [scope], 10_000, now, 0.99).hold is not None  # room again: the old one went
    assert _spend(store, "total") == (0, 10_000)


def test_a_budget_on_a_tag_not_in_ascii_starts_from_the_ledgers_spend(tmp_path):
    """The counter's first value is a LIKE over the JSON tags, which are stored as UTF-8, not \\u escapes."""
    from routecli.guard.budget import Scope
    from routecli.store import budgets

    rows = [attempt(status="ok", cost_micros=cost, tags=tags) for tags, cost in ((["équipe"], 100), (["e"], 7))]
    for i, row in enumerate(rows):
        row.id = row.request_id = f"T{i}"
    scope = Scope(key="tag:équipe:total", label="tag", limit_micros=10**9, period="total", tag="équipe")
    with open_store(tmp_path / "l.db") as store:
        store.record(*rows)
        assert budgets.standings(store, [scope], datetime.now(timezone.utc))[0].spent == 100
