"""Migrations m005-m009: A/B tests, stats indexes, the similarity cache, attempt tags, pruned totals.

Never edit one that has shipped; append a new one (the list is in migrations.py).
"""

from __future__ import annotations

from sqlalchemy import Connection


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
    _attempt_tags_indexes(conn)


def _attempt_tags_indexes(conn: Connection) -> None:
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


LATER = [m005_ab, m006_stats_indexes, m007_similar_cache, m008_attempt_tags, m009_pruned_totals]
