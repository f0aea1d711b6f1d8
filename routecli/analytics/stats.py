"""Totals and breakdowns of the ledger, computed by the database (GROUP BY), never row by row.

Honesty rules: a row whose cost is unknown is left out of every cost sum and counted in
`cost_unknown`; savings compare cost with baseline cost only over ok rows where both are
known, and `savings.rows` says how many rows that is.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from sqlalchemy import ColumnElement, and_, case, distinct, func, select, true

from routecli.pricing import format_usd, from_micros
from routecli.store import Store
from routecli.store.models import ATTEMPTS

_C = ATTEMPTS.c
_OK = _C.status == "ok"
_COVERED = and_(_OK, _C.cost_micros.is_not(None), _C.baseline_cost_micros.is_not(None))
_PERCENTILES = (50, 95)
_TOKENS = ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens")


def compute_stats(store: Store, *, since: datetime | None = None, until: datetime | None = None) -> dict[str, Any]:
    """Stats for attempts created in [since, until) (aware datetimes), as JSON-ready data.

    Money is text of decimal dollars ("0.000442"); latency is milliseconds over ok rows.
    """
    where = time_window(since, until)
    with store.read() as conn:
        totals = _grouped(conn, [], where)[()]  # no GROUP BY: always exactly one row
        by_tier = _grouped(conn, [_C.tier], where)
        by_model = _grouped(conn, [_C.provider, _C.model], where)
    return {
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "totals": totals,
        "by_tier": {key[0]: value for key, value in sorted(by_tier.items())},
        "by_model": {f"{key[0]}:{key[1]}": value for key, value in sorted(by_model.items())},
        "notes": _notes(totals),
    }


def time_window(since: datetime | None, until: datetime | None) -> ColumnElement[bool]:
    """created_at in [since, until); either end may be open."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.utcoffset() is None:
            raise ValueError(f"{name}={value!r} is naive: pass a timezone-aware datetime")
    clauses = []
    if since is not None:
        clauses.append(_C.created_at >= since)
    if until is not None:
        clauses.append(_C.created_at < until)
    return and_(true(), *clauses)


def _count(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _sum(column: Any, condition: ColumnElement[bool] | None = None) -> ColumnElement[Any]:
    value = column if condition is None else case((condition, column))
    return func.sum(value)


def _aggregates() -> list[Any]:
    return [
        func.count().label("attempts"),
        func.count(distinct(_C.request_id)).label("requests"),
        _count(_OK).label("ok"),
        _count(_C.status == "error").label("errors"),
        _count(_C.status == "skipped").label("skipped"),
        _count(_C.status == "dry-run").label("dry_runs"),
        *(func.coalesce(_sum(getattr(_C, name)), 0).label(name) for name in _TOKENS),
        _sum(_C.cost_micros).label("cost_micros"),
        _count(and_(_OK, _C.cost_micros.is_(None))).label("cost_unknown"),
        _count(_COVERED).label("savings_rows"),
        _sum(_C.cost_micros, _COVERED).label("savings_cost"),
        _sum(_C.baseline_cost_micros, _COVERED).label("savings_baseline"),
        func.avg(case((_OK, _C.latency_ms))).label("latency_mean"),
    ]


def _grouped(conn: Any, keys: Sequence[Any], where: ColumnElement[bool]) -> dict[tuple, dict[str, Any]]:
    query = select(*keys, *_aggregates()).where(where).group_by(*keys)
    out = {}
    for row in conn.execute(query).mappings():
        key = tuple(row[column.name] for column in keys)
        out[key] = _shape(row)
    for key, percentiles in _latency_percentiles(conn, keys, where).items():
        if key in out:
            out[key]["latency_ms"].update(percentiles)
    return out


def _latency_percentiles(conn: Any, keys: Sequence[Any], where: ColumnElement[bool]) -> dict[tuple, dict]:
    """Nearest-rank p50/p95 with window functions (SQLite >= 3.25 and PostgreSQL alike)."""
    partition = list(keys) or None
    ranked = (
        select(
            *keys,
            _C.latency_ms,
            func.row_number().over(partition_by=partition, order_by=_C.latency_ms).label("rn"),
            func.count().over(partition_by=partition).label("n"),
        )
        .where(where, _OK, _C.latency_ms.is_not(None))
        .subquery()
    )
    group = [ranked.c[column.name] for column in keys]
    # The p-th percentile is the smallest value whose rank reaches p% of the count.
    picks = [
        func.min(case((ranked.c.rn * 100 >= p * ranked.c.n, ranked.c.latency_ms))).label(f"p{p}")
        for p in _PERCENTILES
    ]
    rows = conn.execute(select(*group, *picks).group_by(*group)).mappings()
    return {
        tuple(row[column.name] for column in keys): {f"p{p}": _ms(row[f"p{p}"]) for p in _PERCENTILES}
        for row in rows
    }


def _shape(row: Any) -> dict[str, Any]:
    counts = ("attempts", "requests", "ok", "errors", "skipped", "dry_runs", *_TOKENS, "cost_unknown")
    out: dict[str, Any] = {name: int(row[name]) for name in counts}
    out["cost_usd"] = _usd(row["cost_micros"])
    out["savings"] = _savings(int(row["savings_rows"]), row["savings_cost"], row["savings_baseline"])
    out["latency_ms"] = {"mean": _ms(row["latency_mean"]), "p50": None, "p95": None}
    return out


def _savings(rows: int, cost_micros: Any, baseline_micros: Any) -> dict[str, Any]:
    cost = from_micros(int(cost_micros or 0))
    baseline = from_micros(int(baseline_micros or 0))
    saved = baseline - cost
    pct = float(round(saved * 100 / baseline, 2)) if baseline else None
    return {
        "rows": rows,
        "cost_usd": format_usd(cost),
        "baseline_cost_usd": format_usd(baseline),
        "saved_usd": format_usd(saved),
        "saved_pct": pct,
    }


def _usd(micros: Any) -> str:
    return format_usd(from_micros(int(micros or 0))) or "0.000000"


def _ms(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


def _notes(totals: dict[str, Any]) -> list[str]:
    notes = []
    if totals["cost_unknown"]:
        notes.append(
            f"{totals['cost_unknown']} ok attempt(s) have an unknown price and are left out of cost_usd"
        )
    if totals["ok"]:
        notes.append(
            f"savings cover {totals['savings']['rows']} of {totals['ok']} ok attempt(s): "
            "those with both a known cost and a known baseline cost"
        )
    return notes


