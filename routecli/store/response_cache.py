"""The exact response cache: answers by key, with a TTL; eviction keeps the answers that saved most."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text

from routecli.domain import ModelRef, Usage
from routecli.store.engine import write_transaction
from routecli.store.models import stamp as _text


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    key: str
    answer: str
    usage: Usage | None
    attempt_id: str | None  # the call that produced it
    cost_micros: int | None  # what that call cost: what each hit saves
    kind: str = "exact"  # or "similar": a near-identical prompt's answer
    similarity: float | None = None


def lookup(store: Any, key: str, now: datetime) -> CachedAnswer | None:
    """A live entry for `key`, counted as a hit; None when absent or expired."""
    with store.read() as conn:
        row = conn.execute(text("SELECT * FROM response_cache WHERE key = :key AND expires_at > :now"),
                           {"key": key, "now": _text(now)}).first()
    if row is None:
        return None
    with write_transaction(store.engine) as conn:
        conn.execute(text("UPDATE response_cache SET hits = hits + 1, saved_micros = saved_micros + :saved, "
                          "last_hit_at = :now WHERE key = :key"),
                     {"saved": row.cost_micros or 0, "now": _text(now), "key": key})
    usage = json.loads(row.usage)
    return CachedAnswer(key, row.answer, Usage(**usage) if usage else None, row.attempt_id, row.cost_micros)


def save(store: Any, key: str, ref: ModelRef, answer: str, usage: Usage | None, attempt_id: str,
         cost_micros: int | None, now: datetime, ttl: float, max_entries: int) -> None:
    with write_transaction(store.engine) as conn:
        conn.execute(text("DELETE FROM response_cache WHERE key = :key"), {"key": key})
        conn.execute(
            text("INSERT INTO response_cache (key, provider, model, answer, usage, attempt_id, cost_micros, hits, "
                 "saved_micros, created_at, expires_at, last_hit_at) VALUES (:key, :provider, :model, :answer, "
                 ":usage, :attempt, :cost, 0, 0, :now, :expires, NULL)"),
            {"key": key, "provider": ref.provider, "model": ref.model, "answer": answer, "usage": usage_json(usage),
             "attempt": attempt_id, "cost": cost_micros, "now": _text(now),
             "expires": _text(now + timedelta(seconds=ttl))})
        _evict(conn, now, max_entries)


def usage_json(usage: Usage | None) -> str:
    return json.dumps(None if usage is None else {
        "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
        "cached_tokens": usage.cached_tokens, "cache_write_tokens": usage.cache_write_tokens,
        "reasoning_tokens": usage.reasoning_tokens})


def _evict(conn: Any, now: datetime, max_entries: int) -> None:
    """Past the size limit: expired entries go first, then those that saved least, oldest first."""
    count = conn.execute(text("SELECT COUNT(*) FROM response_cache")).scalar_one()
    if count <= max_entries:
        return
    conn.execute(text("DELETE FROM response_cache WHERE expires_at <= :now"), {"now": _text(now)})
    excess = conn.execute(text("SELECT COUNT(*) FROM response_cache")).scalar_one() - max_entries
    if excess > 0:
        conn.execute(text("DELETE FROM response_cache WHERE key IN (SELECT key FROM response_cache "
                          "ORDER BY saved_micros ASC, COALESCE(last_hit_at, created_at) ASC LIMIT :n)"),
                     {"n": excess})


def stats(store: Any, now: datetime) -> dict[str, int]:
    with store.read() as conn:
        row = conn.execute(text("SELECT COUNT(*) AS entries, COALESCE(SUM(hits), 0) AS hits, "
                                "COALESCE(SUM(saved_micros), 0) AS saved, "
                                "COALESCE(SUM(CASE WHEN expires_at <= :now THEN 1 ELSE 0 END), 0) AS expired "
                                "FROM response_cache"), {"now": _text(now)}).one()
    return {"entries": int(row.entries), "hits": int(row.hits), "saved_micros": int(row.saved), "expired": int(row.expired)}


def clear(store: Any) -> int:
    with write_transaction(store.engine) as conn:
        return conn.execute(text("DELETE FROM response_cache")).rowcount
