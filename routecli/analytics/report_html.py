"""`routecli dashboard --html FILE`: one self-contained HTML report of the ledger.

No script, no stylesheet or font from elsewhere: inline CSS and inline SVG (svgcharts.py), so the
file opens offline, mails as one attachment, and shows the same in every browser.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

from sqlalchemy import Text, and_, case, distinct, func, select

from routecli.analytics.stats import compute_stats, time_window
from routecli.store import Store, utcnow
from routecli.store.models import ATTEMPTS

_C = ATTEMPTS.c
_COVERED = and_(_C.status == "ok", _C.cost_micros.is_not(None), _C.baseline_cost_micros.is_not(None))
_QUANTILES = (5, 25, 50, 75, 95)
MAX_BUCKETS = 1000
AB_TESTS_SHOWN = 4


def report_data(store: Store, config: Any, *, since: datetime | None, until: datetime | None,
                now: datetime | None = None) -> dict[str, Any]:
    """Everything the page shows, as plain data (tests read it without parsing HTML)."""
    from routecli.analytics.ab_report import ab_report
    from routecli.analytics.ab_store import list_rows

    now = now or utcnow()
    end = until or now
    hourly = since is not None and end - since <= timedelta(days=2)
    where = time_window(since, until)
    with store.read() as conn:
        rows = list(conn.execute(_series_query(where, 13 if hourly else 10)))
        latency = list(conn.execute(_latency_query(where)))
        errors = list(conn.execute(_errors_query(where)))
    tests = [row.name for row in list_rows(store)][-AB_TESTS_SHOWN:]
    return {
        "since": since.isoformat() if since else None,
        "until": end.isoformat(),
        "generated_at": now.isoformat(),
        "totals": compute_stats(store, since=since, until=until)["totals"],
        "series": _pivot(rows, hourly, end, tuple(getattr(config, "tier_order", ()))),
        "latency": [{"model": f"{r.provider}:{r.model}", "n": int(r.n),
                     "quantiles_ms": [float(r._mapping[f"p{q}"]) for q in _QUANTILES]} for r in latency],
        "errors": [{"model": f"{r.provider}:{r.model}", "calls": int(r.calls), "errors": int(r.errors)}
                   for r in errors if r.calls],
        "ab": [ab_report(store, name) for name in reversed(tests)],
    }


def _series_query(where: Any, width: int) -> Any:
    bucket = func.substr(_C.created_at, 1, width, type_=Text)  # the fixed-width stamp's day or hour
    return (
        select(
            bucket.label("bucket"), _C.tier,
            func.count(distinct(case((_C.source != "judge", _C.request_id)))).label("requests"),
            func.coalesce(func.sum(_C.cost_micros), 0).label("cost"),
            func.coalesce(func.sum(case((_COVERED, _C.cost_micros))), 0).label("covered"),
            func.coalesce(func.sum(case((_COVERED, _C.baseline_cost_micros))), 0).label("baseline"),
        )
        .where(where)
        .group_by(bucket, _C.tier)
    )


def _latency_query(where: Any) -> Any:
    """Nearest-rank quantiles per model with window functions, as stats.py does for p50/p95."""
    keys = [_C.provider, _C.model]
    ranked = (
        select(*keys, _C.latency_ms,
               func.row_number().over(partition_by=keys, order_by=_C.latency_ms).label("rn"),
               func.count().over(partition_by=keys).label("n"))
        .where(where, _C.status == "ok", _C.latency_ms.is_not(None), _C.cache_kind.is_(None))
        .subquery()
    )
    picks = [func.min(case((ranked.c.rn * 100 >= q * ranked.c.n, ranked.c.latency_ms))).label(f"p{q}")
             for q in _QUANTILES]
    group = [ranked.c.provider, ranked.c.model]
    return select(*group, func.max(ranked.c.n).label("n"), *picks).group_by(*group).order_by(*group)


def _errors_query(where: Any) -> Any:
    called = _C.status.in_(("ok", "error"))  # skipped and dry runs never reached the model
    return (
        select(_C.provider, _C.model,
               func.coalesce(func.sum(case((called, 1), else_=0)), 0).label("calls"),
               func.coalesce(func.sum(case((_C.status == "error", 1), else_=0)), 0).label("errors"))
        .where(where)
        .group_by(_C.provider, _C.model)
        .order_by(_C.provider, _C.model)
    )


def _pivot(rows: list[Any], hourly: bool, end: datetime, tier_order: tuple[str, ...]) -> dict[str, Any]:
    """Buckets from the first with data to `end`, gaps filled with zeros; tiers in routing order."""
    if not rows:
        return {"hourly": hourly, "buckets": [], "cost": [], "baseline_cost": [], "covered_cost": [], "tiers": {}}
    step = timedelta(hours=1) if hourly else timedelta(days=1)
    fmt = "%Y-%m-%dT%H" if hourly else "%Y-%m-%d"
    cursor = datetime.strptime(min(row.bucket for row in rows), fmt)
    last = datetime.strptime(max(max(row.bucket for row in rows), end.strftime(fmt)), fmt)
    buckets = []
    while cursor <= last and len(buckets) < MAX_BUCKETS:
        buckets.append(cursor.strftime(fmt))
        cursor += step
    index = {bucket: i for i, bucket in enumerate(buckets)}
    seen = {row.tier for row in rows}
    tiers = [t for t in tier_order if t in seen] + sorted(seen - set(tier_order))
    out: dict[str, Any] = {"hourly": hourly, "buckets": buckets, "tiers": {t: [0] * len(buckets) for t in tiers}}
    for name in ("cost", "baseline_cost", "covered_cost"):
        out[name] = [0] * len(buckets)
    for row in rows:
        i = index.get(row.bucket)
        if i is None:
            continue
        out["tiers"][row.tier][i] += int(row.requests)
        out["cost"][i] += int(row.cost)
        out["covered_cost"][i] += int(row.covered)
        out["baseline_cost"][i] += int(row.baseline)
    return out


def usd_axis(dollars: float) -> str:
    if dollars == 0:
        return "$0"
    if abs(dollars) >= 1:
        return f"${dollars:,.2f}"
    return "$" + f"{dollars:.8f}".rstrip("0").rstrip(".")


def ms_axis(ms: float) -> str:
    return f"{ms / 1000:g} s" if ms >= 1000 else f"{ms:g} ms"


def write_report(store: Store, config: Any, path: Path, *, since: datetime | None, until: datetime | None) -> None:
    from routecli.analytics.report_page import render_html

    page = render_html(report_data(store, config, since=since, until=until))
    Path(path).write_text(page, encoding="utf-8")


def section(title: str, body: str, note: str = "") -> str:
    extra = f'<p class="note">{escape(note)}</p>' if note else ""
    return f"<section><h2>{escape(title)}</h2>{body}{extra}</section>"
