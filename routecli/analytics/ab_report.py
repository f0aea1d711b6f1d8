"""The results of an A/B test: per variant figures with 95% intervals, pairwise tests, and a winner
named only when the evidence is there.

The unit is the request (every attempt of it: judge call, retries, fallbacks, escalation), so a
strategy pays for what its first choice sets off. Requests that only ever were dry runs are left out.

The winner rule (also in `routecli ab report --help`): a variant wins when, on the primary metric,
it is better than every other variant with p < 0.05 / (number of pairs) (Bonferroni), each side
has at least MIN_REQUESTS requests with that metric known, and on no quality guard (feedback,
escalation rate, error rate) is it significantly worse than any other variant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from sqlalchemy import text

from routecli.analytics.ab_store import describe, get_test
from routecli.analytics.significance import Moments, mean_interval, two_proportions, welch, wilson
from routecli.store import Store

ALPHA = 0.05
MIN_REQUESTS = 30
# name -> (kind, which way is better, label)
METRICS: dict[str, tuple[str, str, str]] = {
    "cost": ("mean", "lower", "cost per request"),
    "feedback": ("mean", "higher", "mean feedback score"),
    "escalation": ("rate", "lower", "escalation rate"),
    "errors": ("rate", "lower", "error rate"),
    "confidence": ("mean", "higher", "mean confidence of the first answer"),
}
GUARDS = ("feedback", "escalation", "errors")

# One row per request of the test; the feedback that counts is each request's latest.
_PER_REQUEST = """
SELECT r.variant, r.cost, r.unpriced, r.escalated, r.answered, r.confidence, r.live, f.score
FROM (
    SELECT request_id, MIN(ab_variant) AS variant,
           SUM(cost_micros) AS cost,
           SUM(CASE WHEN status = 'ok' AND cost_micros IS NULL THEN 1 ELSE 0 END) AS unpriced,
           MAX(CASE WHEN step = 'escalation' THEN 1 ELSE 0 END) AS escalated,
           MAX(CASE WHEN status = 'ok' AND source <> 'judge' THEN 1 ELSE 0 END) AS answered,
           MAX(CASE WHEN status = 'ok' AND step = 'first' AND source <> 'judge' THEN confidence END) AS confidence,
           SUM(CASE WHEN status <> 'dry-run' THEN 1 ELSE 0 END) AS live
    FROM attempts WHERE ab_test = :name GROUP BY request_id
) r
LEFT JOIN (
    SELECT request_id, score FROM feedback WHERE id IN (SELECT MAX(id) FROM feedback GROUP BY request_id)
) f ON f.request_id = r.request_id
"""


@dataclass
class Tally:
    requests: int = 0
    dry_runs: int = 0
    unpriced: int = 0
    cost: Moments = field(default_factory=Moments)
    feedback: Moments = field(default_factory=Moments)
    confidence: Moments = field(default_factory=Moments)
    escalated: int = 0
    errors: int = 0

    def add(self, row: Any) -> None:
        if not row.live:
            self.dry_runs += 1
            return
        self.requests += 1
        if row.unpriced:
            self.unpriced += 1  # its cost is not known: left out of the cost figures, never taken as $0
        else:
            self.cost.add(float(row.cost or 0))
        if row.score is not None:
            self.feedback.add(float(row.score))
        if row.confidence is not None:
            self.confidence.add(float(row.confidence))
        self.escalated += int(row.escalated or 0)
        self.errors += 0 if row.answered else 1

    def moments(self, metric: str) -> Moments:
        return getattr(self, metric)

    def rate(self, metric: str) -> tuple[int, int]:
        return (self.escalated if metric == "escalation" else self.errors), self.requests

    def sample(self, metric: str) -> int:
        return self.rate(metric)[1] if METRICS[metric][0] == "rate" else self.moments(metric).n


def tallies(store: Store, name: str, variants: list[str]) -> dict[str, Tally]:
    out = {variant: Tally() for variant in variants}
    with store.read() as conn:
        for row in conn.execute(text(_PER_REQUEST), {"name": name}):
            out.setdefault(row.variant, Tally()).add(row)  # a variant no longer listed still shows
    return out


def _figure(tally: Tally, metric: str) -> dict[str, Any]:
    if METRICS[metric][0] == "rate":
        k, n = tally.rate(metric)
        return {"n": n, "k": k, "rate": _round(k / n if n else None), "ci95": _pair(wilson(k, n))}
    m = tally.moments(metric)
    return {"n": m.n, "mean": _round(m.mean), "ci95": _pair(mean_interval(m))}


def compare(a: Tally, b: Tally, metric: str) -> dict[str, Any]:
    """The two-sided test of a against b on one metric; `better` names the side the data favour."""
    kind, direction, _ = METRICS[metric]
    if kind == "rate":
        result, test = two_proportions(*a.rate(metric), *b.rate(metric)), "two-proportion z"
    else:
        result, test = welch(a.moments(metric), b.moments(metric)), "Welch t"
    if result is None:
        return {"metric": metric, "test": test, "statistic": None, "p": None, "better": None}
    statistic, p = result
    a_ahead = statistic < 0 if direction == "lower" else statistic > 0
    better = None if statistic == 0 else ("a" if a_ahead else "b")
    return {"metric": metric, "test": test, "statistic": _round(statistic), "p": float(f"{p:.3g}"), "better": better}


def pick_winner(tallies_: dict[str, Tally], metric: str) -> tuple[str | None, str, list[dict[str, Any]]]:
    """(winner or None, why, every pairwise comparison) by the rule in this module's docstring."""
    names = list(tallies_)
    pairs = list(combinations(names, 2))
    alpha = ALPHA / max(1, len(pairs))
    comparisons = []
    for left, right in pairs:
        for name in dict.fromkeys((metric, *GUARDS)):
            found = compare(tallies_[left], tallies_[right], name)
            comparisons.append({"a": left, "b": right, **found})
    small = [n for n in names if tallies_[n].sample(metric) < MIN_REQUESTS]
    if small:
        return None, (f"no winner yet: {', '.join(small)} ha{'s' if len(small) == 1 else 've'} fewer than "
                      f"{MIN_REQUESTS} requests with {METRICS[metric][2]} known"), comparisons
    for candidate in names:
        beats = [c for c in comparisons if c["metric"] == metric and candidate in (c["a"], c["b"])]
        if all(_won(c, candidate, alpha) for c in beats):
            worse = [c for c in comparisons if c["metric"] in GUARDS and c["metric"] != metric
                     and candidate in (c["a"], c["b"]) and _lost(c, candidate, alpha)]
            if worse:
                what = ", ".join(sorted({METRICS[c["metric"]][2] for c in worse}))
                why = f"no winner: {candidate} is best on {METRICS[metric][2]} but significantly worse on {what}"
                return None, why, comparisons
            return candidate, _why(candidate, beats, metric, alpha), comparisons
    why = f"no winner: no variant is better than every other on {METRICS[metric][2]} with p < {alpha:.3g}"
    return None, why, comparisons


def _side(comparison: dict[str, Any], name: str) -> str:
    return "a" if comparison["a"] == name else "b"


def _won(comparison: dict[str, Any], name: str, alpha: float) -> bool:
    p = comparison["p"]
    return p is not None and p < alpha and comparison["better"] == _side(comparison, name)


def _lost(comparison: dict[str, Any], name: str, alpha: float) -> bool:
    p = comparison["p"]
    return p is not None and p < alpha and comparison["better"] not in (None, _side(comparison, name))


def _why(name: str, beats: list[dict[str, Any]], metric: str, alpha: float) -> str:
    worst = max(c["p"] for c in beats)
    return f"{name} wins on {METRICS[metric][2]} (p = {worst:.3g} < {alpha:.3g} against every other variant)"


def ab_report(store: Store, name: str, *, metric: str = "cost") -> dict[str, Any]:
    """Everything `routecli ab report` shows, as JSON-ready data."""
    if metric not in METRICS:
        from routecli.errors import UsageError

        raise UsageError(f"Unknown metric {metric!r}; use one of: {', '.join(METRICS)}")
    test = describe(get_test(store, name))
    found = tallies(store, name, [v["name"] for v in test["variants"]])
    winner, verdict, comparisons = pick_winner(found, metric)
    return {
        "test": test,
        "metric": metric,
        "alpha": ALPHA,
        "min_requests": MIN_REQUESTS,
        "variants": {
            variant: {
                "requests": t.requests,
                "dry_runs": t.dry_runs,
                "unpriced": t.unpriced,
                **{key: _figure(t, key) for key in METRICS},
            }
            for variant, t in found.items()
        },
        "comparisons": comparisons,
        "winner": winner,
        "verdict": verdict,
    }


def _round(value: float | None, digits: int = 4) -> float | None:
    """Rounded for JSON; None for nothing to show, and for infinity (a test with no spread), which JSON lacks."""
    return None if value is None or math.isinf(value) else round(value, digits)


def _pair(pair: tuple[float, float] | None) -> list[float] | None:
    return None if pair is None else [round(pair[0], 4), round(pair[1], 4)]
