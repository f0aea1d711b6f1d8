"""`routecli insights`: suggestions from the ledger, each with the numbers behind it and the command
that applies it. A rule that lacks the evidence (too few requests, no target, no test) says nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from routecli.store.models import stamp

if TYPE_CHECKING:
    from routecli.config import Config
    from routecli.store import Store

MIN_REQUESTS = 50  # before a tier share is compared with its target
DRIFT = 0.10  # absolute share difference worth re-calibrating for
MIN_CALLS = 20  # before a model's error rate counts
ERROR_RATE = 0.10
MIN_AGENT_REQUESTS = 10
AGENT_ESCALATION = 0.5
MIN_REPEATS = 5

_ROUTED = "source <> 'judge' AND step = 'first' AND created_at >= :since"


def insights(store: Store, config: Config, since: datetime) -> list[dict[str, Any]]:
    params = {"since": stamp(since)}
    with store.read() as conn:
        found = [*_drift(conn, config, params), *_failing_models(conn, config, params),
                 *_escalating_agents(conn, config, params), *_repeats(conn, config, params)]
    return found + _ab_winners(store)


def _suggestion(kind: str, message: str, evidence: dict[str, Any], command: str) -> dict[str, Any]:
    return {"kind": kind, "message": message, "evidence": evidence, "command": command}


def _drift(conn: Any, config: Config, params: dict) -> list[dict[str, Any]]:
    top = config.tier_order[-1]
    target = config.target_shares.get(top)
    if target is None:
        return []
    row = conn.execute(text(f"SELECT COUNT(*) AS n, SUM(CASE WHEN tier = :top THEN 1 ELSE 0 END) AS strong "
                            f"FROM attempts WHERE {_ROUTED}"), {**params, "top": top}).one()
    if row.n < MIN_REQUESTS:
        return []
    share = (row.strong or 0) / row.n
    if abs(share - target) < DRIFT:
        return []
    return [_suggestion(
        "calibration_drift",
        f"the {top} tier got {share:.0%} of {row.n:,} requests; it was calibrated for {target:.0%}",
        {"tier": top, "share": round(share, 4), "target": target, "requests": row.n},
        f"routecli calibrate --from-log --strong-share {target:g}")]


def _failing_models(conn: Any, config: Config, params: dict) -> list[dict[str, Any]]:
    rows = conn.execute(text(
        "SELECT provider, model, COUNT(*) AS calls, SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS failed "
        "FROM attempts WHERE created_at >= :since AND status IN ('ok', 'error') AND cache_kind IS NULL "
        "AND source <> 'judge' GROUP BY provider, model"), params).all()
    found = []
    for row in rows:
        rate = (row.failed or 0) / row.calls
        ref = f"{row.provider}:{row.model}"
        tier = next((t for t, r in config.all_models() if str(r) == ref), None)
        if row.calls < MIN_CALLS or rate < ERROR_RATE or tier is None or len(config.tiers[tier]) < 2:
            continue
        kinds = conn.execute(text("SELECT error_kind, COUNT(*) AS n FROM attempts WHERE provider = :p AND model = :m "
                                  "AND status = 'error' AND created_at >= :since GROUP BY error_kind ORDER BY n DESC"),
                             {**params, "p": row.provider, "m": row.model}).all()
        others = [str(r) for r in config.tiers[tier] if str(r) != ref]
        found.append(_suggestion(
            "failing_model",
            f"{ref} failed {rate:.0%} of {row.calls:,} calls ({', '.join(f'{k.error_kind} {k.n}' for k in kinds)}); "
            f"move it to the end of tier {tier}",
            {"model": ref, "tier": tier, "calls": row.calls, "failed": row.failed, "rate": round(rate, 4)},
            f"routecli config set tiers.{tier}.models {','.join(others + [ref])}"))
    return found


def _escalating_agents(conn: Any, config: Config, params: dict) -> list[dict[str, Any]]:
    rows = conn.execute(text(
        "SELECT a.agent, a.tier, COUNT(*) AS n, SUM(CASE WHEN EXISTS (SELECT 1 FROM attempts e WHERE "
        "e.request_id = a.request_id AND e.step = 'escalation') THEN 1 ELSE 0 END) AS escalated "
        f"FROM attempts a WHERE a.agent IS NOT NULL AND a.{_ROUTED.replace(' AND ', ' AND a.')} "
        "GROUP BY a.agent, a.tier"), params).all()
    by_agent: dict[str, list[Any]] = {}
    for row in rows:
        by_agent.setdefault(row.agent, []).append(row)
    found = []
    for agent, groups in by_agent.items():
        n, escalated = sum(g.n for g in groups), sum(g.escalated or 0 for g in groups)
        if n < MIN_AGENT_REQUESTS or escalated / n < AGENT_ESCALATION:
            continue
        usual = max(groups, key=lambda g: g.n).tier
        order = config.tier_order
        if usual not in order or order.index(usual) + 1 >= len(order):
            continue
        higher = order[order.index(usual) + 1]
        found.append(_suggestion(
            "escalating_agent",
            f"agent {agent}: {escalated} of {n} requests escalated (mostly from {usual}); start it at {higher}",
            {"agent": agent, "requests": n, "escalated": escalated, "usual_tier": usual},
            f"routecli config set policies.agent_min_tier.{agent} {higher}"))
    return found


def _repeats(conn: Any, config: Config, params: dict) -> list[dict[str, Any]]:
    row = conn.execute(text(
        "SELECT COALESCE(SUM(n - 1), 0) AS repeats, COALESCE(SUM(cost * (n - 1) / n), 0) AS saving FROM ("
        "SELECT COUNT(*) AS n, SUM(cost_micros) AS cost FROM attempts WHERE status = 'ok' AND cache_kind IS NULL "
        "AND source <> 'judge' AND created_at >= :since "
        "GROUP BY prompt_hash, system_hash, provider, model HAVING COUNT(*) > 1) AS repeated"), params).one()
    repeats, saving = int(row.repeats), int(row.saving or 0)
    if repeats < MIN_REPEATS:
        return []
    cache_on = config.guards.cache.enabled
    how = ("send those requests with temperature 0 (the cache answers only those)" if cache_on
           else "turn the cache on and send those requests with temperature 0")
    return [_suggestion(
        "cacheable_repeats",
        f"{repeats:,} answered requests repeated an earlier prompt to the same model; the cache would have "
        f"saved ${saving / 1e6:,.4f}: {how}",
        {"repeats": repeats, "saving_micros": saving, "cache_enabled": cache_on},
        "routecli config set cache.enabled true" if not cache_on else "routecli ask --temperature 0 ...")]


def _ab_winners(store: Store) -> list[dict[str, Any]]:
    from routecli.analytics.ab import parse_strategy
    from routecli.analytics.ab_report import ab_report
    from routecli.analytics.ab_store import list_rows, describe

    found = []
    for row in list_rows(store):
        test = describe(row)
        report = ab_report(store, test["name"])
        winner = report["winner"]
        if winner is None:
            continue
        strategy = next(v["strategy"] for v in test["variants"] if v["name"] == winner)
        parsed = parse_strategy(strategy)
        cost = report["variants"][winner]["cost"]["mean"]
        command = f"routecli config set routing.classifier {parsed.classifier}"
        found.append(_suggestion(
            "ab_winner",
            f"A/B test {test['name']}: variant {winner} ({strategy}) won on cost, {report['verdict']}",
            {"test": test["name"], "winner": winner, "strategy": strategy, "cost_per_request": cost},
            command + (f" (then the thresholds of {strategy})" if parsed.cut is not None or parsed.thresholds else "")))
    return found
