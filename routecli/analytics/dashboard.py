"""What `routecli dashboard` shows, as JSON-ready data: one snapshot of the ledger, by SQL aggregates.

Spend is by UTC calendar day and month (what budgets count); tier mix, latency and errors cover
the last 24 hours, so a quiet morning still shows something. Rendering lives in the CLI.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Mapping

from sqlalchemy import Text, and_, case, distinct, func, select, text

from routecli.analytics.stats import compute_stats
from routecli.pricing import format_usd, from_micros
from routecli.store import Store, utcnow
from routecli.store.models import ATTEMPTS

_C = ATTEMPTS.c
_COVERED = and_(_C.status == "ok", _C.cost_micros.is_not(None), _C.baseline_cost_micros.is_not(None))
_PERIODS = {"daily": "today", "monthly": "month", "total": "total"}  # budget period -> spend window
MINUTES = 60  # the requests-per-minute history


def budget_limits(config: Any) -> dict[str, Decimal]:
    """Dollar limits by period (daily, monthly, total) from whichever shape the config has."""
    budgets = getattr(getattr(config, "guards", None), "budgets", None) or getattr(config, "budgets", None)
    limits = getattr(budgets, "limits", budgets)
    out = {}
    for period in _PERIODS:
        value = limits.get(period) if isinstance(limits, Mapping) else getattr(limits, period, None)
        if value is not None:
            out[period] = Decimal(str(value))
    return out


def snapshot(store: Store, config: Any = None, *, now: datetime | None = None, recent: int = 8) -> dict[str, Any]:
    """One frame of the dashboard."""
    now = now or utcnow()
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    starts = {"today": day, "month": day.replace(day=1), "total": None}
    limits = budget_limits(config)
    last_day = compute_stats(store, since=now - timedelta(hours=24), until=None)
    with store.read() as conn:
        spend = {window: _spend(conn, since, now) for window, since in starts.items()}
        per_minute = _per_minute(conn, now)
        last_minute = _requests(conn, now - timedelta(minutes=1), now)
        latest = _recent(conn, recent)
        alerts, open_count = _alerts(conn)
    for period, window in _PERIODS.items():
        _budget(spend[window], limits.get(period))
    totals = last_day["totals"]
    return {
        "at": now.isoformat(),
        "spend": spend,
        "budgets": {period: format_usd(limit) for period, limit in limits.items()},
        "last_24h": {
            "requests": totals["requests"],
            "attempts": totals["attempts"],
            "errors": totals["errors"],
            "latency_ms": totals["latency_ms"],
            "tiers": {tier: group["requests"] for tier, group in last_day["by_tier"].items()},
            "models": {
                model: {"requests": group["requests"], "errors": group["errors"], "latency_ms": group["latency_ms"]}
                for model, group in last_day["by_model"].items()
            },
        },
        "rpm": {"last_minute": last_minute, "per_minute": per_minute},
        "recent": latest,
        "alerts": {"open": open_count, "latest": alerts},
    }


def _spend(conn: Any, since: datetime | None, until: datetime) -> dict[str, Any]:
    where = and_(_C.created_at < until, *([_C.created_at >= since] if since else []))
    row = conn.execute(
        select(
            func.coalesce(func.sum(_C.cost_micros), 0).label("cost"),
            func.sum(case((_COVERED, _C.cost_micros))).label("covered_cost"),
            func.sum(case((_COVERED, _C.baseline_cost_micros))).label("baseline"),
        ).where(where)
    ).one()
    cost, covered, baseline = (int(value or 0) for value in (row.cost, row.covered_cost, row.baseline))
    return {
        "cost_usd": format_usd(from_micros(cost)),
        "saved_usd": format_usd(from_micros(baseline - covered)),
        "saved_pct": round((baseline - covered) * 100 / baseline, 1) if baseline else None,
    }


def _budget(window: dict[str, Any], limit: Decimal | None) -> None:
    window["limit_usd"] = format_usd(limit) if limit is not None else None
    spent = Decimal(window["cost_usd"])
    window["used_share"] = float(round(spent / limit, 4)) if limit else None


def _requests(conn: Any, since: datetime, until: datetime) -> int:
    query = select(func.count(distinct(_C.request_id))).where(_C.created_at >= since, _C.created_at < until,
                                                             _C.source != "judge")
    return int(conn.execute(query).scalar_one())


def _per_minute(conn: Any, now: datetime) -> list[int]:
    """Requests started in each of the last MINUTES minutes, oldest first (the last one still running)."""
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(minutes=MINUTES)
    minute = func.substr(_C.created_at, 1, 16, type_=Text)  # "YYYY-MM-DDTHH:MM" of the fixed-width stamp
    query = (
        select(minute.label("minute"), func.count(distinct(_C.request_id)).label("n"))
        .where(_C.created_at >= start, _C.created_at < end, _C.source != "judge")
        .group_by(minute)
    )
    counts = {row.minute: int(row.n) for row in conn.execute(query)}
    stamps = [(start + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M") for i in range(MINUTES)]
    return [counts.get(stamp, 0) for stamp in stamps]


def _recent(conn: Any, limit: int) -> list[dict[str, Any]]:
    query = (
        select(_C.created_at, _C.source, _C.tier, _C.provider, _C.model, _C.status, _C.cost_micros,
               _C.latency_ms, _C.reasons, _C.agent, _C.step, _C.ab_variant, _C.error_kind)
        .order_by(_C.created_at.desc(), _C.id.desc())
        .limit(limit)
    )
    return [
        {
            "at": row.created_at.isoformat(),
            "source": row.source,
            "tier": row.tier,
            "model": f"{row.provider}:{row.model}",
            "status": row.status,
            "step": row.step,
            "cost_usd": format_usd(from_micros(row.cost_micros)),
            "latency_ms": None if row.latency_ms is None else round(row.latency_ms, 1),
            "why": "; ".join((row.reasons or [])[:2]) or (row.error_kind or ""),
            "agent": row.agent,
            "ab_variant": row.ab_variant,
        }
        for row in conn.execute(query)
    ]


def _alerts(conn: Any, limit: int = 5) -> tuple[list[dict[str, Any]], int]:
    open_count = conn.execute(text("SELECT COUNT(*) FROM alerts WHERE acknowledged_at IS NULL")).scalar_one()
    rows = conn.execute(
        text("SELECT created_at, kind, severity, message FROM alerts WHERE acknowledged_at IS NULL "
             "ORDER BY created_at DESC, id DESC LIMIT :n"),
        {"n": limit},
    ).mappings()
    return [dict(row) for row in rows], int(open_count)
