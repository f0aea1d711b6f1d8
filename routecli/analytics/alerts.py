"""Alert rules over the ledger: figures from SQL, thresholds in plain Python, one row per finding.

`check_alerts(store, config)` is what runs after each `ask` / `batch` and in `routecli alerts`:
it records each rule that fires once per (rule, subject, UTC day) — the dedupe key — so
checking again is free of spam, and returns only the alerts it recorded now. The rules
(`[alerts]` in the config; 0 turns one off):
- budget_share: a daily / monthly / total limit of [budgets] is this share spent (and again
  at 100%); same kind and dedupe key as the budget guard's own alert, so the two never double.
- escalation_rate, error_rate (per model), min_savings, min_confidence: over the last
  `window_hours`, once at least `min_requests` requests (or calls, for a model) back the figure.
- anomaly_factor: today's spend is above k x the median daily spend of the `anomaly_days`
  days before it (days without spend count as 0; no median, no alert).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Sequence

from sqlalchemy import bindparam, func, select, text

from routecli.analytics.stats_sql import day_of, folded, followups, window
from routecli.config import AlertConfig
from routecli.store import Store
from routecli.store.alerts import record_alert
from routecli.store.engine import write_transaction
from routecli.store.models import ATTEMPTS, utcnow

_C = ATTEMPTS.c


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule that fired: what an alert row is made of."""

    kind: str
    severity: str  # warning | critical
    message: str
    evidence: dict[str, Any]
    dedupe_key: str


@dataclass(frozen=True, slots=True)
class Alert:
    id: str
    created_at: str
    kind: str
    severity: str
    message: str
    evidence: dict[str, Any]
    dedupe_key: str | None
    acknowledged_at: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------- checking


def check_alerts(store: Store, config: Any, *, now: datetime | None = None) -> list[Alert]:
    """Evaluate every enabled rule; record the findings not yet recorded; return those alerts."""
    rules = getattr(config, "alerts", None) or AlertConfig()
    if not rules.enabled:
        return []
    now = now or utcnow()
    with store.read() as conn:
        findings = evaluate(conn, rules, getattr(getattr(config, "guards", None), "budgets", None), now)
        fresh = _unrecorded(conn, findings)
    if not fresh:
        return []  # the usual case after a run: nothing new, and no write lock taken
    ids = []
    with write_transaction(store.engine) as conn:
        for finding in fresh:
            alert_id = record_alert(conn, kind=finding.kind, severity=finding.severity, message=finding.message,
                                    evidence=finding.evidence, dedupe_key=finding.dedupe_key)
            if alert_id:
                ids.append(alert_id)
    return list_alerts(store, ids=ids)


def evaluate(conn: Any, rules: AlertConfig, budgets: Any, now: datetime) -> list[Finding]:
    """Every rule's finding, if it fires at `now`; reads only."""
    since = now - timedelta(hours=rules.window_hours)
    day = now.astimezone(timezone.utc).strftime("%Y-%m-%d")
    sums = folded(conn, since, now, ["model"])
    totals = sums[("total", ())]
    span = {"since": since.isoformat(), "until": now.isoformat(), "min_requests": rules.min_requests}
    found: list[Finding] = []
    if rules.escalation_rate:
        escalated = followups(conn, since, now, [])[("total", ())][1] if totals["requests"] else 0
        found += escalation_rule(int(totals["requests"] or 0), escalated, rules, span, day)
    if rules.error_rate:
        per_model = {f"{k[0]}:{k[1]}": (int(r["ok"] or 0), int(r["errors"] or 0))
                     for (dim, k), r in sums.items() if dim == "model"}
        found += error_rules(per_model, rules, span, day)
    if rules.min_savings:
        found += savings_rule(totals, rules, span, day)
    if rules.min_confidence:
        found += confidence_rule(totals, rules, span, day)
    if rules.anomaly_factor:
        found += anomaly_rule(_daily_spend(conn, now, rules.anomaly_days), rules, day)
    if rules.budget_share and budgets is not None:
        found += budget_rules(_budget_spend(conn, budgets, now), rules.budget_share)
    return found


def escalation_rule(requests: int, escalated: int, rules: AlertConfig, span: dict, day: str) -> list[Finding]:
    if requests < rules.min_requests or escalated <= rules.escalation_rate * requests:
        return []
    rate = escalated / requests
    return [Finding("escalation_rate", "warning",
                    f"{rate:.0%} of requests were escalated in the last {rules.window_hours:g} h "
                    f"(alert above {rules.escalation_rate:.0%}): cheap tiers are answering poorly",
                    {**span, "requests": requests, "escalated": escalated, "rate": round(rate, 4),
                     "threshold": rules.escalation_rate}, f"escalation_rate:{day}")]


def error_rules(per_model: dict[str, tuple[int, int]], rules: AlertConfig, span: dict, day: str) -> list[Finding]:
    found = []
    for model, (ok, errors) in sorted(per_model.items()):
        calls = ok + errors
        if calls < rules.min_requests or errors <= rules.error_rate * calls:
            continue
        rate = errors / calls
        found.append(Finding("error_rate", "critical" if rate >= 0.5 else "warning",
                             f"{model} failed {rate:.0%} of {calls} calls in the last {rules.window_hours:g} h "
                             f"(alert above {rules.error_rate:.0%})",
                             {**span, "model": model, "calls": calls, "errors": errors, "rate": round(rate, 4),
                              "threshold": rules.error_rate}, f"error_rate:{model}:{day}"))
    return found


def savings_rule(totals: dict[str, Any], rules: AlertConfig, span: dict, day: str) -> list[Finding]:
    rows, baseline = int(totals["savings_rows"] or 0), int(totals["savings_baseline"] or 0)
    if rows < rules.min_requests or baseline <= 0:
        return []
    cost = int(totals["savings_cost"] or 0) + int(totals["overhead_cost"] or 0)
    share = (baseline - cost) / baseline
    if share >= rules.min_savings:
        return []
    return [Finding("low_savings", "warning",
                    f"routing saved {share:.0%} against the baseline in the last {rules.window_hours:g} h "
                    f"(alert below {rules.min_savings:.0%})",
                    {**span, "answers": rows, "cost_micros": cost, "baseline_micros": baseline,
                     "saved_share": round(share, 4), "threshold": rules.min_savings}, f"low_savings:{day}")]


def confidence_rule(totals: dict[str, Any], rules: AlertConfig, span: dict, day: str) -> list[Finding]:
    count = int(totals["conf_n"] or 0)
    if count < rules.min_requests:
        return []
    mean = float(totals["conf_sum"]) / count
    if mean >= rules.min_confidence:
        return []
    return [Finding("low_confidence", "warning",
                    f"answers averaged confidence {mean:.2f} in the last {rules.window_hours:g} h "
                    f"(alert below {rules.min_confidence:.2f})",
                    {**span, "answers": count, "mean": round(mean, 4), "threshold": rules.min_confidence},
                    f"low_confidence:{day}")]


def anomaly_rule(daily: dict[str, int], rules: AlertConfig, day: str) -> list[Finding]:
    """`daily`: spend in micro-dollars per UTC day, today last, the trailing days before it."""
    trailing = [micros for d, micros in daily.items() if d != day]
    today = daily.get(day, 0)
    median = statistics.median(trailing) if trailing else 0
    if median <= 0 or today <= rules.anomaly_factor * median:
        return []
    factor = today / median
    return [Finding("spend_anomaly", "warning",
                    f"today's spend ${today / 1e6:.2f} is {factor:.1f}x the median day of the last "
                    f"{len(trailing)} (${median / 1e6:.2f}; alert above {rules.anomaly_factor:g}x)",
                    {"day": day, "spent_micros": today, "trailing_median_micros": median,
                     "trailing_days": dict(sorted(daily.items())), "factor": round(factor, 2),
                     "threshold": rules.anomaly_factor}, f"spend_anomaly:{day}")]


def budget_rules(standings: Iterable[tuple[str, str, int, int]], share: float) -> list[Finding]:
    """`standings`: (counter key, label, spent, limit) in micro-dollars per limit."""
    found = []
    for key, label, spent, limit in standings:
        for mark, severity in ((1.0, "critical"), (share, "warning")):
            if limit and spent >= mark * limit:
                found.append(Finding("budget", severity,
                                     f"budget: {label} limit ${limit / 1e6:.2f}: {spent / limit:.0%} spent",
                                     {"key": key, "spent_micros": spent, "limit_micros": limit,
                                      "share": round(spent / limit, 4)}, f"budget:{key}:{int(mark * 100)}"))
                break  # the highest mark passed is the one worth saying
    return found


# ---------------------------------------------------------------- the figures the rules read


def _daily_spend(conn: Any, now: datetime, days: int) -> dict[str, int]:
    """Spend per UTC day for today and the `days` before it, 0 for days without any."""
    today = now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=days)
    day = day_of()
    rows = conn.execute(
        select(day.label("day"), func.coalesce(func.sum(_C.cost_micros), 0))
        .where(window(start, now))
        .group_by(day)
    ).all()
    spend = {(start + timedelta(days=i)).strftime("%Y-%m-%d"): 0 for i in range(days + 1)}
    spend.update({row[0]: int(row[1]) for row in rows})
    return spend


def _budget_spend(conn: Any, budgets: Any, now: datetime) -> list[tuple[str, str, int, int]]:
    """(key, label, spent, limit) for each global limit of [budgets]; the budget guard's counter
    when it keeps one (it is kept current with every insert), else the ledger's sum."""
    limits = getattr(budgets, "limits", None)
    found = []
    for period, label, key, start in _periods(now):
        limit = getattr(limits, period, None)
        if limit is None:
            continue
        counter = conn.execute(text("SELECT spent_micros FROM budget_spend WHERE key = :key"), {"key": key}).first()
        if counter is not None:
            spent = int(counter[0])
        else:
            spent = int(conn.execute(select(func.coalesce(func.sum(_C.cost_micros), 0))
                                     .where(window(start, None))).scalar_one())
        found.append((key, label, spent, int(limit * 1_000_000)))
    return found


def _periods(now: datetime) -> list[tuple[str, str, str, datetime | None]]:
    day = now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    return [
        ("daily", "daily", f"day:{day:%Y-%m-%d}", day),
        ("monthly", "monthly", f"month:{month:%Y-%m}", month),
        ("total", "total", "total", None),
    ]


def _unrecorded(conn: Any, findings: Sequence[Finding]) -> list[Finding]:
    if not findings:
        return []
    query = text("SELECT dedupe_key FROM alerts WHERE dedupe_key IN :keys").bindparams(
        bindparam("keys", expanding=True))
    seen = {row[0] for row in conn.execute(query, {"keys": [f.dedupe_key for f in findings]})}
    return [f for f in findings if f.dedupe_key not in seen]


# ---------------------------------------------------------------- reading and acknowledging


def list_alerts(store: Store, *, include_acknowledged: bool = False, ids: Sequence[str] | None = None,
                limit: int | None = None) -> list[Alert]:
    """Alerts newest first: the open ones, or all, or the given ids."""
    where, params = [], {}
    if ids is not None:
        if not ids:
            return []
        where.append("id IN :ids")
        params["ids"] = list(ids)
    elif not include_acknowledged:
        where.append("acknowledged_at IS NULL")
    sql = "SELECT id, created_at, kind, severity, message, evidence, dedupe_key, acknowledged_at FROM alerts"
    sql += (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY created_at DESC, id DESC"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    query = text(sql)
    if ids is not None:
        query = query.bindparams(bindparam("ids", expanding=True))
    with store.read() as conn:
        return [_alert(row) for row in conn.execute(query, params)]


def alerts_summary(store: Store, latest: int = 10) -> dict[str, Any]:
    """What `stats` shows: how many alerts are open, and the newest of them."""
    with store.read() as conn:
        count = conn.execute(text("SELECT COUNT(*) FROM alerts WHERE acknowledged_at IS NULL")).scalar_one()
    return {"open": int(count), "latest": [a.to_json() for a in list_alerts(store, limit=latest)]}


def acknowledge(store: Store, ids: Sequence[str] | None = None, *, now: datetime | None = None) -> list[str]:
    """Mark open alerts acknowledged (the given ids, or every open one); return the ids marked."""
    stamp = (now or utcnow()).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with write_transaction(store.engine) as conn:
        query = "SELECT id FROM alerts WHERE acknowledged_at IS NULL"
        params: dict[str, Any] = {}
        if ids is not None:
            query += " AND id IN :ids"
            params["ids"] = list(ids)
        select_open = text(query)
        if ids is not None:
            select_open = select_open.bindparams(bindparam("ids", expanding=True))
        marked = [row[0] for row in conn.execute(select_open, params)]
        if marked:
            conn.execute(text("UPDATE alerts SET acknowledged_at = :at WHERE id IN :ids").bindparams(
                bindparam("ids", expanding=True)), {"at": stamp, "ids": marked})
    return marked


def _alert(row: Any) -> Alert:
    try:
        evidence = json.loads(row.evidence)
    except (TypeError, ValueError):
        evidence = {"raw": row.evidence}  # a row some other writer made; show it rather than fail
    return Alert(row.id, row.created_at, row.kind, row.severity, row.message, evidence, row.dedupe_key,
                 row.acknowledged_at)
