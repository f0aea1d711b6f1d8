"""The ledger schema, as an ordered list of named migrations (simonw/llm style).

Each migration runs in its own transaction together with the row that records it in
`_migrations`, so it is applied completely or not at all. The SQL is plain DDL that
SQLite and PostgreSQL both accept: TEXT, BIGINT, INTEGER, DOUBLE PRECISION, no
AUTOINCREMENT. Never edit a migration that has shipped; append a new one.
"""

from __future__ import annotations

from typing import Callable

from sqlalchemy import Connection, Engine, inspect, text

from routecli.errors import StoreError
from routecli.store.engine import write_transaction
from routecli.store.models import utcnow

Migration = Callable[[Connection], None]

MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append(fn)
    return fn


@migration
def m001_attempts(conn: Connection) -> None:
    conn.exec_driver_sql(
        """
        CREATE TABLE attempts (
            id TEXT NOT NULL PRIMARY KEY,
            request_id TEXT NOT NULL,
            created_at TEXT NOT NULL,
            source TEXT NOT NULL,
            run_id TEXT,
            prompt_hash TEXT NOT NULL,
            prompt TEXT,
            answer TEXT,
            system_hash TEXT,
            agent TEXT,
            tags TEXT NOT NULL,
            signals TEXT NOT NULL,
            classifier TEXT NOT NULL,
            classifier_version TEXT NOT NULL,
            score DOUBLE PRECISION NOT NULL,
            tier TEXT NOT NULL,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            reasons TEXT NOT NULL,
            phase TEXT NOT NULL,
            notes TEXT NOT NULL,
            status TEXT NOT NULL,
            error_kind TEXT,
            error_message TEXT,
            input_tokens INTEGER,
            output_tokens INTEGER,
            cached_tokens INTEGER,
            reasoning_tokens INTEGER,
            ttft_ms DOUBLE PRECISION,
            latency_ms DOUBLE PRECISION,
            cost_micros BIGINT,
            baseline_model TEXT,
            baseline_cost_micros BIGINT,
            price_source TEXT
        )
        """
    )
    # created_at serves --since/--until; tier and (provider, model) serve the GROUP BYs.
    conn.exec_driver_sql("CREATE INDEX ix_attempts_created_at ON attempts (created_at)")
    conn.exec_driver_sql("CREATE INDEX ix_attempts_tier ON attempts (tier, created_at)")
    conn.exec_driver_sql("CREATE INDEX ix_attempts_model ON attempts (provider, model, created_at)")
    conn.exec_driver_sql("CREATE INDEX ix_attempts_request_id ON attempts (request_id)")


@migration
def m002_runs(conn: Connection) -> None:
    """Batch runs, and one row per input line: what resume skips and what the output file is made from."""
    conn.exec_driver_sql(
        """
        CREATE TABLE runs (
            id TEXT NOT NULL PRIMARY KEY,
            input_name TEXT NOT NULL,
            input_hash TEXT NOT NULL,
            total_lines INTEGER NOT NULL,
            output_path TEXT,
            dry_run INTEGER NOT NULL,
            status TEXT NOT NULL,
            pid INTEGER,
            host TEXT,
            started_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            finished_at TEXT
        )
        """
    )
    conn.exec_driver_sql(
        """
        CREATE TABLE run_lines (
            run_id TEXT NOT NULL REFERENCES runs (id),
            line_no INTEGER NOT NULL,
            line_id TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            attempt_id TEXT REFERENCES attempts (id),
            error_kind TEXT,
            error_message TEXT,
            answer TEXT,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (run_id, line_no)
        )
        """
    )
    # input_hash finds the run to resume; run_id sums a run's attempts for `routecli runs`.
    conn.exec_driver_sql("CREATE INDEX ix_runs_input_hash ON runs (input_hash, started_at)")
    conn.exec_driver_sql("CREATE INDEX ix_run_lines_status ON run_lines (run_id, status)")
    conn.exec_driver_sql("CREATE INDEX ix_attempts_run_id ON attempts (run_id)")


@migration
def m003_judge_cache(conn: Connection) -> None:
    """Phase-2 judge answers, keyed by a hash of the request's last two messages and the judge model."""
    conn.exec_driver_sql(
        """
        CREATE TABLE judge_cache (
            key TEXT NOT NULL,
            judge_model TEXT NOT NULL,
            tier TEXT NOT NULL,
            reason TEXT NOT NULL,
            attempt_id TEXT REFERENCES attempts (id),
            created_at TEXT NOT NULL,
            PRIMARY KEY (key, judge_model)
        )
        """
    )


@migration
def m004_guards(conn: Connection) -> None:
    """What the guard rails need: linked attempts (retry, fallback, escalation), cache hits and
    the answer's confidence on each attempt; budget counters and holds; circuit breakers; the
    response cache; alerts."""
    for column in (
        "parent_id TEXT",  # the attempt this one follows: a retry, a fallback or an escalation
        "step TEXT NOT NULL DEFAULT 'first'",  # first | retry | fallback | escalation
        "cache_kind TEXT",  # NULL, or exact | similar: answered from the cache, no call made
        "cache_source_id TEXT",  # the attempt whose answer the cache reused
        "similarity DOUBLE PRECISION",
        "saved_micros BIGINT",  # what a cache hit saved: the cost of the call it replaced
        "confidence DOUBLE PRECISION",  # assess(): how sure we are the answer is good
        "caller TEXT",  # who asked through `routecli serve`
    ):
        conn.exec_driver_sql(f"ALTER TABLE attempts ADD COLUMN {column}")
    conn.exec_driver_sql(
        """
        CREATE TABLE budget_spend (
            key TEXT NOT NULL PRIMARY KEY,
            spent_micros BIGINT NOT NULL,
            reserved_micros BIGINT NOT NULL,
            updated_at TEXT NOT NULL
        )
        """
    )
    conn.exec_driver_sql(
        """
        CREATE TABLE budget_holds (
            id TEXT NOT NULL PRIMARY KEY,
            keys TEXT NOT NULL,
            micros BIGINT NOT NULL,
            created_at TEXT NOT NULL
        )
        """
    )
    conn.exec_driver_sql(
        """
        CREATE TABLE breakers (
            target TEXT NOT NULL PRIMARY KEY,
            state TEXT NOT NULL,
            consecutive INTEGER NOT NULL,
            window_started TEXT NOT NULL,
            window_calls INTEGER NOT NULL,
            window_failures INTEGER NOT NULL,
            opened_at TEXT,
            probe_at TEXT,
            last_error TEXT,
            updated_at TEXT NOT NULL
        )
        """
    )
    conn.exec_driver_sql(
        """
        CREATE TABLE response_cache (
            key TEXT NOT NULL PRIMARY KEY,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            answer TEXT NOT NULL,
            usage TEXT NOT NULL,
            attempt_id TEXT,
            cost_micros BIGINT,
            hits INTEGER NOT NULL,
            saved_micros BIGINT NOT NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            last_hit_at TEXT
        )
        """
    )
    conn.exec_driver_sql("CREATE INDEX ix_response_cache_expires ON response_cache (expires_at)")
    conn.exec_driver_sql(
        """
        CREATE TABLE alerts (
            id TEXT NOT NULL PRIMARY KEY,
            created_at TEXT NOT NULL,
            kind TEXT NOT NULL,
            severity TEXT NOT NULL,
            message TEXT NOT NULL,
            evidence TEXT NOT NULL,
            dedupe_key TEXT,
            acknowledged_at TEXT
        )
        """
    )
    conn.exec_driver_sql("CREATE INDEX ix_alerts_open ON alerts (acknowledged_at, created_at)")
    conn.exec_driver_sql("CREATE INDEX ix_alerts_dedupe ON alerts (dedupe_key)")


@migration
def m005_ab(conn: Connection) -> None:
    """A/B tests of routing strategies, the arm each attempt was routed by, and people's feedback."""
    conn.exec_driver_sql("ALTER TABLE attempts ADD COLUMN ab_test TEXT")  # NULL: in no test
    conn.exec_driver_sql("ALTER TABLE attempts ADD COLUMN ab_variant TEXT")
    conn.exec_driver_sql("CREATE INDEX ix_attempts_ab ON attempts (ab_test, ab_variant)")
    conn.exec_driver_sql(
        """
        CREATE TABLE ab_tests (
            name TEXT NOT NULL PRIMARY KEY,
            variants TEXT NOT NULL,
            split TEXT NOT NULL,
            by_key TEXT NOT NULL,
            status TEXT NOT NULL,
            started_at TEXT NOT NULL,
            stopped_at TEXT
        )
        """
    )
    conn.exec_driver_sql(
        """
        CREATE TABLE feedback (
            id TEXT NOT NULL PRIMARY KEY,
            request_id TEXT NOT NULL,
            attempt_id TEXT,
            score DOUBLE PRECISION NOT NULL,
            note TEXT,
            created_at TEXT NOT NULL
        )
        """
    )
    conn.exec_driver_sql("CREATE INDEX ix_feedback_request ON feedback (request_id, created_at)")


@migration
def m006_stats_indexes(conn: Connection) -> None:
    """What keeps `routecli stats` under a second at a million attempts (benchmarks/stats_scale.py).

    SQLite has no hash aggregate: a GROUP BY sorts every row unless an index already walks the
    rows in group order. ix_attempts_cube is that order for every breakdown at once (day, tier,
    model, status...: `stats` groups by a prefix of it) and holds every summed column, so one scan
    of it, never the table, makes all the figures. The partial indexes keep answers in latency
    and time-to-first-token order per group, so a percentile is one OFFSET into an index instead
    of a sort. ix_attempts_followups finds the requests that fell back or escalated.
    analytics/stats_sql.py writes `substr(created_at, 1, 10)` exactly so, for SQLite to match it.
    """
    conn.exec_driver_sql(
        """
        CREATE INDEX ix_attempts_cube ON attempts (
            substr(created_at, 1, 10), tier, provider, model, status, source, step, cache_kind, agent, tags,
            created_at, input_tokens, output_tokens, cached_tokens, reasoning_tokens, cost_micros,
            baseline_cost_micros, saved_micros, latency_ms, ttft_ms, confidence, score
        )
        """
    )
    for metric, short in (("latency_ms", "latency"), ("ttft_ms", "ttft")):
        answered = f"status = 'ok' AND source <> 'judge' AND {metric} IS NOT NULL"
        for group, keys in (("all", ""), ("tier", "tier, "), ("model", "provider, model, "), ("provider", "provider, "),
                            ("agent", "agent, "), ("day", "substr(created_at, 1, 10), ")):
            conn.exec_driver_sql(
                f"CREATE INDEX ix_attempts_{short}_{group} ON attempts ({keys}{metric}, created_at) WHERE {answered}"
            )
    conn.exec_driver_sql(
        "CREATE INDEX ix_attempts_followups ON attempts (request_id, step) WHERE step IN ('fallback', 'escalation')"
    )


@migration
def m007_similar_cache(conn: Connection) -> None:
    """The opt-in similarity cache: answers by scope (everything but the last user message) and
    normalised prompt, with MinHash band keys to find near-identical prompts by index."""
    conn.exec_driver_sql(
        """
        CREATE TABLE similar_cache (
            key TEXT NOT NULL PRIMARY KEY,
            scope TEXT NOT NULL,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            prompt TEXT NOT NULL,
            answer TEXT NOT NULL,
            usage TEXT NOT NULL,
            attempt_id TEXT,
            cost_micros BIGINT,
            hits INTEGER NOT NULL,
            saved_micros BIGINT NOT NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            last_hit_at TEXT
        )
        """
    )
    conn.exec_driver_sql("CREATE INDEX ix_similar_cache_expires ON similar_cache (expires_at)")
    conn.exec_driver_sql(
        "CREATE TABLE similar_bands (scope TEXT NOT NULL, band TEXT NOT NULL, key TEXT NOT NULL, "
        "PRIMARY KEY (scope, band, key))"
    )
    conn.exec_driver_sql("CREATE INDEX ix_similar_bands_key ON similar_bands (key)")


def applied(engine: Engine) -> list[str]:
    """Names of the migrations recorded in this database, in the order they were applied."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("_migrations"):
            return []
        rows = conn.execute(text("SELECT name FROM _migrations ORDER BY applied_at, name"))
        return [row.name for row in rows]


def apply_migrations(engine: Engine, migrations: list[Migration] | None = None) -> list[str]:
    """Apply every pending migration in order; return the names applied now."""
    migrations = MIGRATIONS if migrations is None else migrations
    names = [fn.__name__ for fn in migrations]
    if len(set(names)) != len(names):
        raise StoreError(f"Duplicate migration names in {names}; this is a routecli bug")
    already = applied(engine)
    _refuse_unknown(already, names)
    pending = [fn for fn in migrations if fn.__name__ not in already]
    if not pending:
        return []  # the usual case: a read, and no write lock taken
    with write_transaction(engine) as conn:
        _ensure_table(conn)
    return [fn.__name__ for fn in pending if _apply_one(engine, fn)]


def _ensure_table(conn: Connection) -> None:
    conn.exec_driver_sql(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT NOT NULL PRIMARY KEY, applied_at TEXT NOT NULL)"
    )


def _refuse_unknown(already: list[str], known: list[str]) -> None:
    unknown = sorted(set(already) - set(known))
    if unknown:
        raise StoreError(
            f"The ledger has migrations this routecli does not know ({', '.join(unknown)}): "
            "it was written by a newer version; upgrade routecli or point --db elsewhere"
        )


def _apply_one(engine: Engine, fn: Migration) -> bool:
    name = fn.__name__
    try:
        with write_transaction(engine) as conn:
            # Re-checked under the write lock: another process may have just applied it.
            found = conn.execute(text("SELECT 1 FROM _migrations WHERE name = :name"), {"name": name})
            if found.first():
                return False
            fn(conn)
            stamp = utcnow().isoformat(timespec="microseconds")
            conn.execute(
                text("INSERT INTO _migrations (name, applied_at) VALUES (:name, :at)"),
                {"name": name, "at": stamp},
            )
            return True
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(
            f"Migration {name} failed and was rolled back ({type(exc).__name__}: {exc}); "
            "it left no trace in the ledger. Report this as a routecli bug"
        ) from exc
