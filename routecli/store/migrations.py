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


# The columns m008 copies from an attempt into each of its tag rows (frozen with m008).
ATTEMPT_TAGS_COPIED = (
    "created_at, status, source, step, cache_kind, input_tokens, output_tokens, cached_tokens, reasoning_tokens, "
    "cost_micros, baseline_cost_micros, saved_micros, latency_ms, ttft_ms, confidence, score"
)
_COPY_FROM_A = ", ".join("a." + column.strip() for column in ATTEMPT_TAGS_COPIED.split(","))
# m008's backfill on SQLite: a row per attempt and distinct tag (ON CONFLICT: a tag listed twice),
# lead = 1 on the attempt's least tag; benchmarks/stats_scale.py fills its synthetic ledger with it too.
ATTEMPT_TAGS_BACKFILL_SQLITE = (
    f"INSERT INTO attempt_tags (attempt_id, tag, lead, {ATTEMPT_TAGS_COPIED}) "
    "SELECT a.id, j.value, CASE WHEN j.value = (SELECT min(k.value) FROM json_each(a.tags) AS k) THEN 1 ELSE 0 END, "
    f"{_COPY_FROM_A} FROM attempts AS a, json_each(a.tags) AS j WHERE j.value IS NOT NULL ON CONFLICT DO NOTHING"
)


@migration
def m008_attempt_tags(conn: Connection) -> None:
    """`stats --by tag` under a second at a million attempts (it took ~8 s expanding the JSON
    `tags` of every attempt with json_each, then sorting the expansion by tag).

    attempt_tags holds one row per attempt and distinct tag, filled from then on by every
    attempt insert in its own transaction (store/tags.py). It copies the columns stats reads
    (the cube's keys and sums, status, source, latency, time to first token): without them
    each tag row would cost a lookup into the wide attempts table, a million random reads, as
    slow as the JSON. Attempts are never updated, so the copy cannot go stale. `lead` is 1 on
    one row of each attempt (its least tag), so the lead rows and the untagged attempts count
    every attempt once: `stats --by tag` takes its totals from them instead of a second pass
    over every attempt (each pass over a million rows costs ~0.45 s of sums).
    ix_attempt_tags_cube is ix_attempts_cube (m006) for tags: rows in (tag, lead, status,
    source, step, cache kind) order with every summed column, so the by-tag sums are one
    covering scan into a few hundred cells, no sort (no day in front: a window is a filter on
    the index's created_at, and a pass with days made 30 times the cells for 20% more time).
    The partial indexes keep each tag's answers in latency and time-to-first-token order, for
    percentiles by OFFSET as m006's do. The untagged attempts (tags = '[]', as every writer
    stores an empty list) get the same three on attempts, holding only them: what an untagged
    attempt costs a writer instead of tag rows.
    """
    conn.exec_driver_sql(
        """
        CREATE TABLE attempt_tags (
            attempt_id TEXT NOT NULL,
            tag TEXT NOT NULL,
            lead INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            status TEXT NOT NULL,
            source TEXT NOT NULL,
            step TEXT NOT NULL,
            cache_kind TEXT,
            input_tokens INTEGER,
            output_tokens INTEGER,
            cached_tokens INTEGER,
            reasoning_tokens INTEGER,
            cost_micros BIGINT,
            baseline_cost_micros BIGINT,
            saved_micros BIGINT,
            latency_ms DOUBLE PRECISION,
            ttft_ms DOUBLE PRECISION,
            confidence DOUBLE PRECISION,
            score DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (attempt_id, tag)
        )
        """
    )
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            f"INSERT INTO attempt_tags (attempt_id, tag, lead, {ATTEMPT_TAGS_COPIED}) "
            "SELECT a.id, j.value, CASE WHEN j.value = (SELECT min(k.value COLLATE \"C\") FROM "  # code point
            "json_array_elements_text(a.tags::json) AS k(value)) THEN 1 ELSE 0 END, "  # order, as SQLite's and Python's
            f"{_COPY_FROM_A} FROM attempts AS a, json_array_elements_text(a.tags::json) AS j(value) "
            "WHERE j.value IS NOT NULL ON CONFLICT DO NOTHING"
        )
    else:
        conn.exec_driver_sql(ATTEMPT_TAGS_BACKFILL_SQLITE)
    # Indexes after the backfill: built once from sorted rows, not kept up row by row.
    conn.exec_driver_sql(
        """
        CREATE INDEX ix_attempt_tags_cube ON attempt_tags (
            tag, lead, status, source, step, cache_kind, created_at, input_tokens, output_tokens, cached_tokens,
            reasoning_tokens, cost_micros, baseline_cost_micros, saved_micros, latency_ms, ttft_ms, confidence, score
        )
        """
    )
    conn.exec_driver_sql(  # tags last: SQLite counts an index covering only if it holds the WHERE's columns
        """
        CREATE INDEX ix_attempts_untagged ON attempts (
            status, source, step, cache_kind, created_at, input_tokens, output_tokens, cached_tokens,
            reasoning_tokens, cost_micros, baseline_cost_micros, saved_micros, latency_ms, ttft_ms, confidence,
            score, tags
        ) WHERE tags = '[]'
        """
    )
    for metric, short in (("latency_ms", "latency"), ("ttft_ms", "ttft")):
        answered = f"status = 'ok' AND source <> 'judge' AND {metric} IS NOT NULL"
        conn.exec_driver_sql(
            f"CREATE INDEX ix_attempt_tags_{short} ON attempt_tags (tag, {metric}, created_at) WHERE {answered}"
        )
        conn.exec_driver_sql(
            f"CREATE INDEX ix_attempts_{short}_untagged ON attempts ({metric}, created_at) "
            f"WHERE {answered} AND tags = '[]'"
        )


@migration
def m009_pruned_totals(conn: Connection) -> None:
    """What `routecli db prune` removed, summed per day and per the keys budgets and stats group
    by, so long-run totals and lazily created budget counters stay right after a prune."""
    conn.exec_driver_sql(
        """
        CREATE TABLE pruned_totals (
            id TEXT NOT NULL PRIMARY KEY,
            day TEXT NOT NULL,
            source TEXT NOT NULL,
            status TEXT NOT NULL,
            tier TEXT NOT NULL,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            agent TEXT,
            tags TEXT NOT NULL,
            run_id TEXT,
            attempts BIGINT NOT NULL,
            requests BIGINT NOT NULL,
            input_tokens BIGINT NOT NULL,
            output_tokens BIGINT NOT NULL,
            cost_micros BIGINT NOT NULL,
            unpriced BIGINT NOT NULL,
            baseline_cost_micros BIGINT NOT NULL,
            saved_micros BIGINT NOT NULL,
            pruned_at TEXT NOT NULL
        )
        """
    )
    conn.exec_driver_sql("CREATE INDEX ix_pruned_totals_day ON pruned_totals (day)")


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
