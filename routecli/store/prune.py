"""`routecli db prune`: remove old attempts, keeping their sums in `pruned_totals`.

Kept whatever their age: attempts of a running A/B test (its report would change under it) and
of batch runs that are not finished (resume needs them). Finished runs older than the cut go
with their lines. Budget counters are never touched; a counter created later starts from the
ledger plus these sums (store/budgets.py), so no limit is silently reset.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text

from routecli.store.engine import write_transaction
from routecli.store.models import new_id, stamp, utcnow

_DOOMED = ("created_at < :before AND (ab_test IS NULL OR ab_test NOT IN "
           "(SELECT name FROM ab_tests WHERE status = 'running')) AND (run_id IS NULL OR run_id NOT IN "
           "(SELECT id FROM runs WHERE status <> 'finished' OR started_at >= :before))")


@dataclass(frozen=True, slots=True)
class Pruned:
    attempts: int
    runs: int
    kept_ab: int  # old attempts kept for running A/B tests
    kept_runs: int  # old attempts kept for unfinished or newer runs
    cost_micros: int


def counts(store: Any, before: datetime) -> Pruned:
    """What a prune at `before` would remove (and keep), without removing anything."""
    params = {"before": stamp(before)}
    with store.read() as conn:
        return _counts(conn, params)


def _counts(conn: Any, params: dict) -> Pruned:
    doomed = conn.execute(text(f"SELECT COUNT(*), COALESCE(SUM(cost_micros), 0) FROM attempts WHERE {_DOOMED}"),
                          params).one()
    old = conn.execute(text("SELECT COUNT(*) FROM attempts WHERE created_at < :before"), params).scalar_one()
    kept_ab = conn.execute(text("SELECT COUNT(*) FROM attempts WHERE created_at < :before AND ab_test IN "
                                "(SELECT name FROM ab_tests WHERE status = 'running')"), params).scalar_one()
    runs = conn.execute(text("SELECT COUNT(*) FROM runs WHERE status = 'finished' AND started_at < :before"),
                        params).scalar_one()
    return Pruned(int(doomed[0]), int(runs), int(kept_ab), int(old) - int(doomed[0]) - int(kept_ab),
                  int(doomed[1]))


def prune(store: Any, before: datetime) -> Pruned:
    """Sum, then delete, in one transaction: a crash leaves either everything or nothing done."""
    params = {"before": stamp(before), "now": stamp(utcnow())}
    with write_transaction(store.engine) as conn:
        found = _counts(conn, params)
        sums = conn.execute(text(
            "SELECT substr(created_at, 1, 10) AS day, source, status, tier, provider, model, agent, tags, run_id, "
            "COUNT(*) AS attempts, SUM(CASE WHEN step = 'first' AND source <> 'judge' THEN 1 ELSE 0 END) AS requests, "
            "COALESCE(SUM(input_tokens), 0) AS input_tokens, COALESCE(SUM(output_tokens), 0) AS output_tokens, "
            "COALESCE(SUM(cost_micros), 0) AS cost_micros, "
            "SUM(CASE WHEN status = 'ok' AND cost_micros IS NULL THEN 1 ELSE 0 END) AS unpriced, "
            "COALESCE(SUM(baseline_cost_micros), 0) AS baseline_cost_micros, "
            "COALESCE(SUM(saved_micros), 0) AS saved_micros "
            f"FROM attempts WHERE {_DOOMED} "
            "GROUP BY substr(created_at, 1, 10), source, status, tier, provider, model, agent, tags, run_id"), params)
        rows = [{**row._asdict(), "id": new_id(), "pruned_at": params["now"]} for row in sums]
        if rows:  # one row per day and key: a few hundred at most, however many attempts go
            columns = ", ".join(rows[0])
            conn.execute(text(f"INSERT INTO pruned_totals ({columns}) VALUES ({', '.join(':' + c for c in rows[0])})"),
                         rows)
        doomed = f"SELECT id FROM attempts WHERE {_DOOMED}"
        conn.execute(text(f"UPDATE judge_cache SET attempt_id = NULL WHERE attempt_id IN ({doomed})"), params)
        conn.execute(text(f"DELETE FROM attempt_tags WHERE attempt_id IN ({doomed})"), params)
        old_runs = "SELECT id FROM runs WHERE status = 'finished' AND started_at < :before"
        conn.execute(text(f"DELETE FROM run_lines WHERE run_id IN ({old_runs})"), params)
        conn.execute(text(f"DELETE FROM attempts WHERE {_DOOMED}"), params)
        conn.execute(text(f"DELETE FROM runs WHERE id IN ({old_runs})"), params)
    return found


def vacuum(store: Any) -> None:
    """Give the space of removed rows back to the file system (SQLite) or the server (PostgreSQL)."""
    # VACUUM refuses to run inside a transaction, so it goes straight to the driver, outside one
    sqlite = store.engine.dialect.name == "sqlite"
    raw = store.engine.raw_connection()
    try:
        if not sqlite:
            raw.driver_connection.autocommit = True
        cursor = raw.cursor()
        cursor.execute("VACUUM" if sqlite else "VACUUM ANALYZE")
        cursor.close()
    finally:
        raw.close()
