"""The phase-2 judge's answers, so the same ambiguous request is judged (and paid for) once."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from routecli.errors import StoreError
from routecli.store.db import Store
from routecli.store.engine import reason, write_transaction
from routecli.store.models import UTCDateTime, utcnow

_TIME = UTCDateTime()


def lookup(store: Store, key: str, judge_model: str) -> tuple[str, str] | None:
    """(tier, reason) judged before for this key by this judge model, if any."""
    with store.read() as conn:
        row = conn.execute(
            text("SELECT tier, reason FROM judge_cache WHERE key = :key AND judge_model = :model"),
            {"key": key, "model": judge_model},
        ).first()
    return (row[0], row[1]) if row else None


def save(store: Store, key: str, judge_model: str, tier: str, why: str, attempt_id: str | None) -> None:
    params = {
        "key": key, "model": judge_model, "tier": tier, "reason": why, "attempt": attempt_id,
        "at": _TIME.process_bind_param(utcnow(), None),
    }
    try:
        with write_transaction(store.engine) as conn:
            conn.execute(text("DELETE FROM judge_cache WHERE key = :key AND judge_model = :model"), params)
            conn.execute(
                text(
                    "INSERT INTO judge_cache (key, judge_model, tier, reason, attempt_id, created_at) "
                    "VALUES (:key, :model, :tier, :reason, :attempt, :at)"
                ),
                params,
            )
    except SQLAlchemyError as exc:
        raise StoreError(f"Cannot cache the judge's answer in {store.location}: {reason(exc)}") from None
