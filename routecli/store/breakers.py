"""Circuit breaker rows: read, claim the half-open probe, and report each call's result.

A healthy model has no row at all, and a success on a healthy model writes nothing: the
ledger already has the call, so the breaker costs a read per call until something fails.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, text

from routecli.config_guards import BreakerConfig
from routecli.guard.breaker import CLOSED, COUNTED, HALF_OPEN, OPEN, BreakerState, after_failure
from routecli.store.engine import write_transaction
from routecli.store.models import stamp as _text
from routecli.store.models import unstamp as _time


def _state(row: Any) -> BreakerState:
    return BreakerState(row.target, row.state, int(row.consecutive), _time(row.opened_at), _time(row.probe_at),
                        row.last_error, int(row.window_calls), int(row.window_failures))


def load(store: Any, targets: list[str] | None = None) -> dict[str, BreakerState]:
    with store.read() as conn:
        rows = conn.execute(text("SELECT * FROM breakers")).all()
    return {row.target: _state(row) for row in rows if targets is None or row.target in targets}


def claim_probe(store: Any, state: BreakerState, now: datetime) -> bool:
    """Atomically turn an open (or abandoned half-open) breaker into this caller's probe."""
    with write_transaction(store.engine) as conn:
        claimed = conn.execute(
            text("UPDATE breakers SET state = :half, probe_at = :now, updated_at = :now "
                 "WHERE target = :target AND state = :state AND COALESCE(probe_at, '') = :seen"),
            {"half": HALF_OPEN, "now": _text(now), "target": state.target, "state": state.state,
             "seen": _text(state.probe_at) or ""},
        ).rowcount
    return claimed == 1


def report(store: Any, target: str, kind: str | None, config: BreakerConfig, now: datetime) -> BreakerState | None:
    """Record one call's result (kind None: it succeeded); the new state when it changed."""
    if kind is None:
        with write_transaction(store.engine) as conn:
            healed = conn.execute(text("DELETE FROM breakers WHERE target = :target"), {"target": target}).rowcount
        return BreakerState(target) if healed else None
    if kind not in COUNTED:
        return None
    with write_transaction(store.engine) as conn:
        row = conn.execute(text("SELECT * FROM breakers WHERE target = :target"), {"target": target}).first()
        state = _state(row) if row else BreakerState(target)
        calls, failures = _window(conn, target, now - timedelta(seconds=config.window))
        new = after_failure(state, config, now, kind, calls, failures)
        _save(conn, new, now, exists=row is not None)
    return new


def _window(conn: Connection, target: str, since: datetime) -> tuple[int, int]:
    provider, _, model = target.partition(":")
    counted = ", ".join(f"'{kind}'" for kind in sorted(COUNTED))
    row = conn.execute(
        text("SELECT COUNT(*) AS calls, "
             f"COALESCE(SUM(CASE WHEN status = 'error' AND error_kind IN ({counted}) THEN 1 ELSE 0 END), 0) AS failed "
             "FROM attempts WHERE provider = :provider AND model = :model AND created_at >= :since "
             "AND status IN ('ok', 'error') AND cache_kind IS NULL"),
        {"provider": provider, "model": model, "since": _text(since)},
    ).one()
    return int(row.calls), int(row.failed)


def _save(conn: Connection, state: BreakerState, now: datetime, *, exists: bool) -> None:
    values = {"target": state.target, "state": state.state, "consecutive": state.consecutive,
              "started": _text(now), "calls": state.window_calls, "failures": state.window_failures,
              "opened": _text(state.opened_at), "probe": _text(state.probe_at), "error": state.last_error,
              "now": _text(now)}
    if exists:
        conn.execute(text("UPDATE breakers SET state = :state, consecutive = :consecutive, window_started = :started, "
                          "window_calls = :calls, window_failures = :failures, opened_at = :opened, "
                          "probe_at = :probe, last_error = :error, updated_at = :now WHERE target = :target"), values)
    else:
        conn.execute(text("INSERT INTO breakers (target, state, consecutive, window_started, window_calls, "
                          "window_failures, opened_at, probe_at, last_error, updated_at) VALUES (:target, :state, "
                          ":consecutive, :started, :calls, :failures, :opened, :probe, :error, :now)"), values)


__all__ = ["CLOSED", "OPEN", "HALF_OPEN", "load", "claim_probe", "report"]
