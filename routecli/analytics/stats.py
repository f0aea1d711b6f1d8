"""Totals and breakdowns of the ledger, computed by the database (see stats_sql), never row by row.

What each figure counts, so the numbers stay honest:
- `requests`: requests, each once, under the group of its first attempt (where routing sent it),
  so a breakdown adds up to the total. Judge calls (source = judge) are routing's own cost: in
  `attempts`, tokens and `cost_usd`, never in `requests`.
- `cost_usd` leaves out rows whose cost is unknown and counts them in `cost_unknown`.
- `savings` compares with the baseline model only over answers whose cost and baseline cost are
  both known (`savings.rows`), charging judge calls and escalations to the routed side
  (`overhead_usd`: the baseline would have answered once, with no judge). A cache hit is an
  answer that cost 0; `cache_saved_usd` is what the cache itself saved (the calls it replaced).
- latency, time to first token, confidence and the cache-hit rate are over answers (ok, not
  judge); the error rate over calls (ok + error); fallback and escalation rates over requests.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Sequence

from sqlalchemy import ColumnElement, and_, true

from routecli.analytics.stats_sql import DIMENSIONS, METRICS, PERCENTILES, folded, followups, percentiles
from routecli.errors import UsageError
from routecli.pricing import format_usd, from_micros
from routecli.store import Store
from routecli.store.models import ATTEMPTS

DEFAULT_BY = ("tier", "model")
_C = ATTEMPTS.c
_COUNTS = ("attempts", "requests", "ok", "errors", "skipped", "dry_runs", "judge_calls", "input_tokens",
           "output_tokens", "cached_tokens", "reasoning_tokens", "cost_unknown", "answers", "cache_hits")
_NONE = {"agent": "(none)", "tag": "(untagged)"}


def compute_stats(
    store: Store,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    by: Sequence[str] | None = None,
    with_alerts: bool = True,
) -> dict[str, Any]:
    """Stats for attempts created in [since, until) (aware datetimes), as JSON-ready data.

    `by` names the breakdowns (DIMENSIONS; default tier and model): each is `by_<name>` in the
    result. Money is text of decimal dollars ("0.000442"); times are milliseconds.
    """
    dims = check_by(by)
    with store.read() as conn:
        sums = folded(conn, since, until, dims)
        flags = followups(conn, since, until, dims)
        groups = {key: _shape(row, flags.get(key, (0, 0))) for key, row in sums.items()}
        for dim in ("total", *dims):
            for metric, count in zip(METRICS, ("lat_n", "ttft_n")):
                counts = {key: int(row[count] or 0) for (d, key), row in sums.items() if d == dim}
                for key, values in percentiles(conn, dim, metric, since, until, counts).items():
                    groups[(dim, key)][metric].update({name: _ms(value) for name, value in values.items()})
    report: dict[str, Any] = {
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "by": list(dims),
        "totals": groups[("total", ())],
    }
    for dim in dims:
        labelled = {_label(dim, key): group for (d, key), group in groups.items() if d == dim}
        report[f"by_{dim}"] = dict(sorted(labelled.items()))
    if with_alerts:
        from routecli.analytics.alerts import alerts_summary

        report["alerts"] = alerts_summary(store)
    report["notes"] = _notes(report["totals"])
    report["pruned"] = pruned_totals(store, since, until)
    if report["pruned"]:
        p = report["pruned"]
        report["notes"].append(
            f"plus {p['requests']:,} requests removed by `routecli db prune` ({p['days']} days): ${p['cost_usd']} spent, "
            f"${p['saved_usd']} saved against the baseline; kept as daily sums, so not in the breakdowns above")
    return report


def check_by(by: Sequence[str] | None) -> list[str]:
    if not by:
        return list(DEFAULT_BY)
    unknown = [name for name in by if name not in DIMENSIONS]
    if unknown:
        raise UsageError(f"Cannot break stats down by {', '.join(unknown)}; choose from: {', '.join(DIMENSIONS)}")
    return list(dict.fromkeys(by))


def time_window(since: datetime | None, until: datetime | None) -> ColumnElement[bool]:
    """created_at in [since, until); either end may be open (for exports and other readers)."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.utcoffset() is None:
            raise ValueError(f"{name}={value!r} is naive: pass a timezone-aware datetime")
    clauses = []
    if since is not None:
        clauses.append(_C.created_at >= since)
    if until is not None:
        clauses.append(_C.created_at < until)
    return and_(true(), *clauses)


def _label(dim: str, key: tuple) -> str:
    if dim == "model":
        return f"{key[0]}:{key[1]}"
    return key[0] if key[0] is not None else _NONE.get(dim, "(none)")


def _shape(row: dict[str, Any], flags: tuple[int, int]) -> dict[str, Any]:
    out: dict[str, Any] = {name: int(row[name] or 0) for name in _COUNTS}
    out["cost_usd"] = _usd(row["cost"])
    out["judge_cost_usd"] = _usd(row["judge_cost"])
    out["savings"] = _savings(row)
    out["fallbacks"], out["escalations"] = flags
    calls = out["ok"] + out["errors"]
    out["rates"] = {
        "error": _share(out["errors"], calls),
        "fallback": _share(flags[0], out["requests"]),
        "escalation": _share(flags[1], out["requests"]),
        "cache_hit": _share(out["cache_hits"], out["answers"]),
    }
    for metric, prefix in zip(METRICS, ("lat", "ttft")):
        mean = _mean(row[f"{prefix}_sum"], row[f"{prefix}_n"])
        out[metric] = {"mean": _ms(mean), **{f"p{p}": None for p in PERCENTILES}}
    out["score_mean"] = _round(_mean(row["score_sum"], out["requests"]))
    out["confidence_mean"] = _round(_mean(row["conf_sum"], row["conf_n"]))
    return out


def _savings(row: dict[str, Any]) -> dict[str, Any]:
    overhead = _dollars(row["overhead_cost"])
    cost = _dollars(row["savings_cost"]) + overhead
    baseline = _dollars(row["savings_baseline"])
    saved = baseline - cost
    return {
        "rows": int(row["savings_rows"] or 0),
        "cost_usd": format_usd(cost),
        "baseline_cost_usd": format_usd(baseline),
        "saved_usd": format_usd(saved),
        "saved_pct": float(round(saved * 100 / baseline, 2)) if baseline else None,
        "overhead_usd": format_usd(overhead),
        "cache_saved_usd": format_usd(_dollars(row["cache_saved"])),
    }


def _dollars(micros: Any) -> Decimal:
    return from_micros(int(micros or 0)) or Decimal("0.000000")  # from_micros(0) is falsy


def _usd(micros: Any) -> str:
    return format_usd(_dollars(micros)) or "0.000000"


def _mean(total: Any, count: Any) -> float | None:
    return float(total) / int(count) if count else None


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _ms(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


def _notes(totals: dict[str, Any]) -> list[str]:
    notes = []
    if totals["cost_unknown"]:
        notes.append(
            f"{totals['cost_unknown']} ok attempt(s) have an unknown price and are left out of cost_usd"
        )
    if totals["answers"]:
        notes.append(
            f"savings cover {totals['savings']['rows']} of {totals['answers']} answer(s): "
            "those with both a known cost and a known baseline cost"
        )
    if totals["judge_calls"]:
        notes.append(
            f"{totals['judge_calls']} judge call(s) cost {totals['judge_cost_usd']} USD: counted in cost and "
            "charged against savings, not counted as requests"
        )
    return notes


def pruned_totals(store: Store, since: datetime | None, until: datetime | None) -> dict[str, Any] | None:
    """Sums of the attempts `db prune` removed, on the days the window touches (a pruned day is whole)."""
    from sqlalchemy import text

    where, params = ["1 = 1"], {}
    if since is not None:
        where.append("day >= :since")
        params["since"] = since.astimezone(timezone.utc).strftime("%Y-%m-%d")
    if until is not None:
        where.append("day <= :until")
        params["until"] = until.astimezone(timezone.utc).strftime("%Y-%m-%d")
    with store.read() as conn:
        row = conn.execute(text(
            "SELECT COUNT(DISTINCT day) AS days, SUM(requests) AS requests, SUM(attempts) AS attempts, "
            "SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens, SUM(cost_micros) AS cost, "
            "SUM(baseline_cost_micros) AS baseline "
            f"FROM pruned_totals WHERE {' AND '.join(where)}"), params).one()
    if not row.attempts:
        return None
    return {"days": int(row.days), "requests": int(row.requests), "attempts": int(row.attempts),
            "input_tokens": int(row.input_tokens), "output_tokens": int(row.output_tokens),
            "cost_usd": str(_dollars(row.cost)), "baseline_usd": str(_dollars(row.baseline)),
            "saved_usd": str(_dollars(int(row.baseline) - int(row.cost)))}
