"""What `routecli budget` and `routecli health` show, as plain dicts (the --json output)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import text

from routecli.config import Config
from routecli.guard.breaker import BreakerState, describe


def budget_report(store: Any, config: Config) -> dict[str, Any]:
    from routecli.guard.budget import _scopes_of
    from routecli.store.budgets import standings

    now = datetime.now(timezone.utc)
    settings = config.guards.budgets
    scopes = _scopes_of(settings.limits, now, "", "")
    for agent, limits in sorted(settings.agents.items()):
        scopes += _scopes_of(limits, now, f"agent:{agent}:", f"agent {agent} ", agent=agent)
    for tag, limits in sorted(settings.tags.items()):
        scopes += _scopes_of(limits, now, f"tag:{tag}:", f"tag {tag} ", tag=tag)
    limits = [{
        "key": s.scope.key, "label": s.scope.label, "period": s.scope.period, "agent": s.scope.agent,
        "tag": s.scope.tag, "spent_micros": s.spent, "reserved_micros": s.reserved,
        "limit_micros": s.scope.limit_micros,
        "share": (s.used / s.scope.limit_micros) if s.scope.limit_micros else 1.0,
    } for s in standings(store, scopes, now)] if scopes else []
    with store.read() as conn:
        alerts = conn.execute(text("SELECT id, created_at, message, evidence FROM alerts WHERE kind = 'budget' "
                                   "AND acknowledged_at IS NULL ORDER BY created_at DESC LIMIT 20")).all()
    return {"limits": limits, "warn_share": settings.warn_share, "on_exceed": settings.on_exceed,
            "alerts": [{"id": a.id, "created_at": a.created_at, "message": a.message,
                        "evidence": json.loads(a.evidence)} for a in alerts]}


def health_report(store: Any, config: Config, since: datetime | None) -> dict[str, Any]:
    from routecli.store import breakers

    now = datetime.now(timezone.utc)
    states = breakers.load(store)
    recent = _recent(store, since)
    models = []
    for tier, ref in config.all_models():
        state = states.get(str(ref)) or BreakerState(str(ref))
        calls, errors, p50, last_error = recent.get((ref.provider, ref.model), (0, 0, None, None))
        models.append({
            "tier": tier, "model": str(ref), "breaker": state.state,
            "breaker_text": describe(state, config.guards.breaker, now),
            "calls": calls, "errors": errors, "error_rate": errors / calls if calls else None,
            "p50_ms": p50, "last_error": last_error,
        })
    return {"since": since.isoformat() if since else None, "models": models}


def _recent(store: Any, since: datetime | None) -> dict[tuple[str, str], tuple[int, int, float | None, str | None]]:
    from routecli.store.budgets import stamp

    where = "status IN ('ok', 'error') AND cache_kind IS NULL" + (" AND created_at >= :since" if since else "")
    params = {"since": stamp(since)} if since else {}
    with store.read() as conn:
        counts = conn.execute(text(
            "SELECT provider, model, COUNT(*) AS calls, "
            "SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS errors, "
            "MAX(CASE WHEN status = 'error' THEN created_at END) AS failed_at "
            f"FROM attempts WHERE {where} GROUP BY provider, model"), params).all()
        found = {}
        for row in counts:
            key_params = {**params, "provider": row.provider, "model": row.model}
            scope = f"{where} AND provider = :provider AND model = :model AND latency_ms IS NOT NULL"
            p50 = conn.execute(text(f"SELECT latency_ms FROM attempts WHERE {scope} ORDER BY latency_ms "
                                    "LIMIT 1 OFFSET :offset"), {**key_params, "offset": int(row.calls) // 2}).scalar()
            last = conn.execute(text("SELECT error_kind FROM attempts WHERE provider = :provider AND model = :model "
                                     "AND created_at = :at"), {**key_params, "at": row.failed_at}).scalar() \
                if row.failed_at else None
            found[(row.provider, row.model)] = (int(row.calls), int(row.errors or 0), p50, last)
    return found
