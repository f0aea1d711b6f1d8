"""The similarity cache's rows: answers found again by MinHash band, confirmed by exact similarity."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, text

from routecli.domain import ModelRef, Usage
from routecli.guard.similar import bands, normalise, shingles, similarity
from routecli.store.engine import write_transaction
from routecli.store.models import stamp
from routecli.store.response_cache import CachedAnswer, usage_json

MAX_CANDIDATES = 50  # a prompt with more band neighbours than this is checked against the first 50


def _bands(prompt: str) -> list[str]:
    return [f"{i}:{band}" for i, band in enumerate(bands(shingles(normalise(prompt))))]


def lookup(store: Any, scope: str, prompt: str, threshold: float, now: datetime) -> tuple[CachedAnswer, float] | None:
    """The most similar live answer in this scope at or above the threshold, counted as a hit."""
    query = text("SELECT DISTINCT c.key, c.prompt FROM similar_bands b JOIN similar_cache c ON c.key = b.key "
                 "WHERE b.scope = :scope AND b.band IN :bands AND c.expires_at > :now LIMIT :most"
                 ).bindparams(bindparam("bands", expanding=True))
    with store.read() as conn:
        found = conn.execute(query, {"scope": scope, "bands": _bands(prompt), "now": stamp(now),
                                     "most": MAX_CANDIDATES}).all()
    scored = sorted(((similarity(prompt, row.prompt), row.key) for row in found), reverse=True)
    if not scored or scored[0][0] < threshold:
        return None
    best, key = scored[0]
    with write_transaction(store.engine) as conn:
        row = conn.execute(text("SELECT * FROM similar_cache WHERE key = :key"), {"key": key}).first()
        if row is None:
            return None
        conn.execute(text("UPDATE similar_cache SET hits = hits + 1, saved_micros = saved_micros + :saved, "
                          "last_hit_at = :now WHERE key = :key"),
                     {"saved": row.cost_micros or 0, "now": stamp(now), "key": key})
    usage = json.loads(row.usage)
    hit = CachedAnswer(key, row.answer, Usage(**usage) if usage else None, row.attempt_id, row.cost_micros,
                       "similar", round(best, 4))
    return hit, best


def save(store: Any, scope: str, ref: ModelRef, prompt: str, answer: str, usage: Usage | None, attempt_id: str,
         cost_micros: int | None, now: datetime, ttl: float, max_entries: int) -> None:
    key = hashlib.sha256(f"{scope}\n{normalise(prompt)}".encode("utf-8", "surrogatepass")).hexdigest()
    with write_transaction(store.engine) as conn:
        conn.execute(text("DELETE FROM similar_bands WHERE key = :key"), {"key": key})
        conn.execute(text("DELETE FROM similar_cache WHERE key = :key"), {"key": key})
        conn.execute(
            text("INSERT INTO similar_cache (key, scope, provider, model, prompt, answer, usage, attempt_id, "
                 "cost_micros, hits, saved_micros, created_at, expires_at, last_hit_at) VALUES (:key, :scope, "
                 ":provider, :model, :prompt, :answer, :usage, :attempt, :cost, 0, 0, :now, :expires, NULL)"),
            {"key": key, "scope": scope, "provider": ref.provider, "model": ref.model, "prompt": prompt,
             "answer": answer, "usage": usage_json(usage), "attempt": attempt_id, "cost": cost_micros,
             "now": stamp(now), "expires": stamp(now + timedelta(seconds=ttl))})
        conn.execute(text("INSERT INTO similar_bands (scope, band, key) VALUES (:scope, :band, :key)"),
                     [{"scope": scope, "band": band, "key": key} for band in sorted(set(_bands(prompt)))])
        _evict(conn, now, max_entries)


def _evict(conn: Any, now: datetime, max_entries: int) -> None:
    """Past the size limit: expired entries go first, then those that saved least, oldest first."""
    if conn.execute(text("SELECT COUNT(*) FROM similar_cache")).scalar_one() <= max_entries:
        return
    conn.execute(text("DELETE FROM similar_bands WHERE key IN (SELECT key FROM similar_cache WHERE expires_at <= :now)"),
                 {"now": stamp(now)})
    conn.execute(text("DELETE FROM similar_cache WHERE expires_at <= :now"), {"now": stamp(now)})
    excess = conn.execute(text("SELECT COUNT(*) FROM similar_cache")).scalar_one() - max_entries
    if excess > 0:
        doomed = [row.key for row in conn.execute(text(
            "SELECT key FROM similar_cache ORDER BY saved_micros ASC, COALESCE(last_hit_at, created_at) ASC "
            "LIMIT :n"), {"n": excess})]
        for table in ("similar_bands", "similar_cache"):
            conn.execute(text(f"DELETE FROM {table} WHERE key IN :keys").bindparams(bindparam("keys", expanding=True)),
                         {"keys": doomed})


def clear(store: Any) -> int:
    with write_transaction(store.engine) as conn:
        conn.execute(text("DELETE FROM similar_bands"))
        return conn.execute(text("DELETE FROM similar_cache")).rowcount


def stats(store: Any, now: datetime) -> dict[str, int]:
    with store.read() as conn:
        row = conn.execute(text("SELECT COUNT(*) AS entries, COALESCE(SUM(hits), 0) AS hits, "
                                "COALESCE(SUM(saved_micros), 0) AS saved FROM similar_cache")).one()
    return {"entries": int(row.entries), "hits": int(row.hits), "saved_micros": int(row.saved)}
