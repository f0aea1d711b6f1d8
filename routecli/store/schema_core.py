"""Migrations m001-m004: the attempts ledger, batch runs, the judge cache and the guard rails' tables.

Plain DDL that SQLite and PostgreSQL both accept. Never edit one that has shipped; append a new
one (the list and the machinery that applies it are in migrations.py).
"""

from __future__ import annotations

from sqlalchemy import Connection


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
    _budget_tables(conn)
    _breaker_cache_alert_tables(conn)


def _budget_tables(conn: Connection) -> None:
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


def _breaker_cache_alert_tables(conn: Connection) -> None:
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


CORE = [m001_attempts, m002_runs, m003_judge_cache, m004_guards]
