"""Measure routers the way the RouteLLM paper does (arXiv 2406.18665, its evals/ code).

For one (strong, weak) pair and a router's scores on graded prompts: thresholds at the
score quantiles 0%, 10%, ..., 100%; at each, prompts scoring >= threshold go to the strong
model (none at the top end) -> (share of strong calls, mean quality). PGR = (quality - weak)
/ (strong - weak); APGR = area under PGR over strong share 0..1 (trapezoids); CPT(x) =
the smallest strong share whose PGR reaches x; AUC = how well scores rank "strong needed".
Ties in scores fall in one step and the straight line across it is what random tie-breaking
would give on average, so a router with few distinct scores is not flattered or punished.
"""

from __future__ import annotations

import math
import random
import re
from pathlib import Path
from typing import Any, Callable, Sequence

from routecli.routing.learned import Model
from routecli.routing.train import Example, Recipe, fit, prompt_key

QUANTILES = 10
# For AUC, "strong needed" is binary: the strong answer graded two points or more above the
# weak one (0.2 on the 0..1 scale); one point is within a single judge grade's noise.
CLEAR_GAP = 0.2
RANDOM_SEEDS = 200
_CODE = re.compile(
    r"\b(code|coding|program\w*|script|function|python|javascript|java|c\+\+|c#|rust|sql|html|css|bash|api|"
    r"library|pandas|pytorch|regex|compiler?|debug\w*|git|docker|implement\w*)\b"
)
_MATH = re.compile(
    r"\b(equation|solve|calculate|probability|integral|derivative|proof|prove|theorem|formula|math\w*|"
    r"percent\w*|how many|how much)\b"
)
_WRITING = re.compile(r"\b(write|essay|story|poem|letter|email|blog|article|rewrite|paraphrase|lyrics|slogan)\b")


# ---------------------------------------------------------------- metrics


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    pos = q * (len(sorted_values) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


def curve(scores: Sequence[float], strong: Sequence[float], weak: Sequence[float], points: int = QUANTILES) -> list[tuple[float, float]]:
    """(strong share, mean quality) at each quantile threshold, by share, both ends included."""
    n = len(scores)
    ordered = sorted(scores)
    thresholds = sorted({quantile(ordered, i / points) for i in range(points + 1)})
    found = {0.0: math.fsum(weak) / n}  # above the top threshold: nothing goes strong
    for t in thresholds:
        chosen = [s >= t for s in scores]
        quality = math.fsum(sv if c else wv for c, sv, wv in zip(chosen, strong, weak)) / n
        found[sum(chosen) / n] = quality
    return sorted(found.items())


def pgr(points: list[tuple[float, float]], strong_mean: float, weak_mean: float) -> list[tuple[float, float]]:
    span = strong_mean - weak_mean
    if abs(span) < 1e-12:
        return [(share, 0.0) for share, _ in points]
    return [(share, (q - weak_mean) / span) for share, q in points]


def apgr(pgr_points: list[tuple[float, float]]) -> float:
    return math.fsum((x2 - x1) * (y1 + y2) / 2 for (x1, y1), (x2, y2) in zip(pgr_points, pgr_points[1:]))


def cpt(pgr_points: list[tuple[float, float]], target: float) -> float | None:
    """Smallest strong share whose PGR reaches target, interpolating inside a step."""
    for (x1, y1), (x2, y2) in zip(pgr_points, pgr_points[1:]):
        if y1 >= target:
            return x1
        if y2 >= target:
            return x1 + (x2 - x1) * (target - y1) / (y2 - y1)
    last = pgr_points[-1]
    return last[0] if last[1] >= target else None


def auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """P(score of a random positive > score of a random negative), ties counted half."""
    ranked = sorted(zip(scores, labels), key=lambda p: p[0])
    positives = sum(1 for _, y in ranked if y)
    negatives = len(ranked) - positives
    if not positives or not negatives:
        return None
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        mid_rank = (i + j + 1) / 2  # 1-based average rank of the tied run
        rank_sum += mid_rank * sum(1 for _, y in ranked[i:j] if y)
        i = j
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def summarise(scores: Sequence[float], examples: Sequence[Example]) -> dict[str, Any]:
    strong = [ex.strong for ex in examples]
    weak = [ex.weak for ex in examples]
    strong_mean, weak_mean = math.fsum(strong) / len(strong), math.fsum(weak) / len(weak)
    points = pgr(curve(scores, strong, weak), strong_mean, weak_mean)
    labels = [ex.gap >= CLEAR_GAP - 1e-9 for ex in examples]
    return {
        "n": len(examples),
        "apgr": apgr(points),
        "cpt50": cpt(points, 0.5),
        "cpt80": cpt(points, 0.8),
        "auc": auc(scores, labels),
        "curve": [[round(x, 4), round(y, 4)] for x, y in points],
    }


def summarise_random(examples: Sequence[Example], seeds: int = RANDOM_SEEDS) -> dict[str, Any]:
    """A router that flips coins, averaged over seeds (each seed a fixed, reproducible stream)."""
    runs = []
    for seed in range(seeds):
        rng = random.Random(seed)
        runs.append(summarise([rng.random() for _ in examples], examples))
    out: dict[str, Any] = {"n": len(examples)}
    for key in ("apgr", "cpt50", "cpt80", "auc"):
        values = [r[key] for r in runs if r[key] is not None]
        out[key] = math.fsum(values) / len(values) if values else None
    out["curve"] = _mean_curve([r["curve"] for r in runs])
    return out


def _mean_curve(curves: list[list[list[float]]]) -> list[list[float]]:
    grid = [i / QUANTILES for i in range(QUANTILES + 1)]
    return [[x, round(math.fsum(_interp(c, x) for c in curves) / len(curves), 4)] for x in grid]


def _interp(points: list[list[float]], x: float) -> float:
    for (x1, y1), (x2, y2) in zip(points, points[1:]):
        if x1 <= x <= x2:
            return y1 if x2 == x1 else y1 + (y2 - y1) * (x - x1) / (x2 - x1)
    return points[-1][1]


# ---------------------------------------------------------------- routers on examples


def folds(examples: Sequence[Example], k: int, repeat: int = 0) -> list[int]:
    """Fold of each example: by prompt fingerprint, so the split ignores file order and is stable.
    `repeat` > 0 reshuffles (fingerprint of the repeat number and the prompt), for repeated k-fold."""
    def key(i: int) -> tuple[str, int]:
        prompt = examples[i].prompt
        return (prompt_key(prompt if not repeat else f"{repeat}\x00{prompt}"), i)

    order = sorted(range(len(examples)), key=key)
    fold = [0] * len(examples)
    for rank, i in enumerate(order):
        fold[i] = rank % k
    return fold


def held_out_scores(examples: list[Example], parts: list[Any], recipe: Recipe) -> list[float]:
    """Each example scored by a model trained only on the other parts (folds, or task groups)."""
    scores = [0.5] * len(examples)  # a part with nothing else to learn from stays undecided
    for held in sorted(set(parts)):
        train = [ex for ex, part in zip(examples, parts) if part != held]
        if not train:
            continue
        model = Model(fit(train, recipe))
        for i, ex in enumerate(examples):
            if parts[i] == held:
                scores[i] = model.score_features(ex)
    return scores


def cross_scores(examples: list[Example], recipe: Recipe, k: int, repeat: int = 0) -> list[float]:
    return held_out_scores(examples, folds(examples, k, repeat), recipe)


def bootstrap_margin(
    a: Sequence[float], b: Sequence[float] | float, examples: Sequence[Example], draws: int = 500, seed: int = 0
) -> dict[str, float]:
    """APGR(a) - APGR(b) when the prompts are resampled with replacement: mean and 95% interval.
    `b` is a second router's scores, or a fixed APGR (random's, which is 0.5 on any sample)."""
    rng = random.Random(seed)
    n = len(examples)
    diffs = []
    for _ in range(draws):
        idx = [rng.randrange(n) for _ in range(n)]
        sample = [examples[i] for i in idx]
        first = summarise([a[i] for i in idx], sample)["apgr"]
        other = b if isinstance(b, (int, float)) else summarise([b[i] for i in idx], sample)["apgr"]
        diffs.append(first - other)
    diffs.sort()
    return {"mean": math.fsum(diffs) / draws, "low": quantile(diffs, 0.025), "high": quantile(diffs, 0.975)}


def task_group(signals: dict[str, Any], prompt: str) -> str:
    """code / math / writing / other: the shared data has a single category, so the transfer
    split needs task types of its own. First match wins, in that order."""
    low = prompt[:3000].lower()
    if signals.get("code_blocks") or signals.get("code_langs") or signals.get("code_words") or _CODE.search(low):
        return "code"
    if signals.get("math") or _MATH.search(low):
        return "math"
    if signals.get("domain") == "creative" or _WRITING.search(low):
        return "writing"
    return "other"


def scores_of(scorer: Callable, examples: list[Example]) -> list[float]:
    from routecli.domain import Message, Request

    return [float(scorer(Request((Message("user", ex.prompt),)))[0]) for ex in examples]


# ---------------------------------------------------------------- a whole evaluation


def learned_scores(examples: list[Example], model: Any, k: int) -> tuple[list[float], str]:
    """The model's scores, or k-fold scores when any prompt was in its training data."""
    trained = set(model.weights.get("trained_on", {}).get("prompts", ()))
    seen = sum(1 for ex in examples if prompt_key(ex.prompt) in trained)
    if not seen:
        return [model.score_features(ex) for ex in examples], "weights as shipped (none of these prompts trained them)"
    recipe = Recipe.from_dict(model.weights.get("recipe", {}))
    how = f"{k}-fold cross-validated: {seen} of {len(examples)} prompts trained the weights, so each fold is scored by a model retrained without it"
    return cross_scores(examples, recipe, k), how


def router_scores(name: str, examples: list[Example], k: int, weights: Path | None) -> tuple[list[float], str]:
    from routecli.routing import CLASSIFIERS

    if name == "learned":
        from routecli.routing.learned import load

        return learned_scores(examples, load(weights), k)
    scorer, version = CLASSIFIERS[name]
    return scores_of(scorer, examples), f"classifier {version}"


def evaluate(
    path: Path, strong: str, weak: str, *, router: str = "learned", k: int = 10,
    weights: Path | None = None, seeds: int = RANDOM_SEEDS, transfer: bool = False,
) -> dict[str, Any]:
    """The chosen router side by side with rules-only and random, overall and per group."""
    from routecli.routing.learned import load
    from routecli.routing.train import pair_examples, read_pairs, with_features

    # Labels as the weights' own recipe defines them, so k-fold retraining matches the weights.
    recipe = Recipe.from_dict(load(weights).weights.get("recipe", {})) if router == "learned" or transfer else Recipe()
    examples = with_features(pair_examples(read_pairs(path), strong, weak, path, recipe))
    names = list(dict.fromkeys([router, "rules", "random"]))
    scores: dict[str, list[float]] = {}
    report: dict[str, Any] = {
        "data": str(path), "strong": strong, "weak": weak, "n": len(examples),
        "strong_mean": math.fsum(ex.strong for ex in examples) / len(examples),
        "weak_mean": math.fsum(ex.weak for ex in examples) / len(examples),
        "quantiles": QUANTILES, "routers": {},
    }
    for name in names:
        if name == "random":
            report["routers"][name] = {**summarise_random(examples, seeds), "how": f"mean of {seeds} seeds"}
            continue
        scores[name], how = router_scores(name, examples, k, weights)
        report["routers"][name] = {**summarise(scores[name], examples), "how": how}
    report["groups"] = {
        "category": _by_group(examples, [ex.category or "-" for ex in examples], scores, seeds),
        "task": _by_group(examples, [task_group(ex.signals, ex.prompt) for ex in examples], scores, seeds),
    }
    if transfer:
        report["transfer"] = transfer_split(examples, scores, seeds, weights)
    return report


def _by_group(examples: list[Example], groups: list[str], scores: dict[str, list[float]], seeds: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for group in sorted(set(groups)):
        idx = [i for i, g in enumerate(groups) if g == group]
        subset = [examples[i] for i in idx]
        row: dict[str, Any] = {"n": len(idx)}
        for name, values in scores.items():
            row[name] = _brief(summarise([values[i] for i in idx], subset))
        row["random"] = _brief(summarise_random(subset, seeds))
        out[group] = row
    return out


def _brief(metrics: dict[str, Any]) -> dict[str, Any]:
    return {key: metrics[key] for key in ("apgr", "cpt50", "cpt80", "auc")}


def transfer_split(examples: list[Example], scores: dict[str, list[float]], seeds: int, weights: Path | None) -> dict[str, Any]:
    """Leave one task group out: train on the others, measure inside the group left out."""
    from routecli.routing.learned import load

    recipe = Recipe.from_dict(load(weights).weights.get("recipe", {}))
    groups = [task_group(ex.signals, ex.prompt) for ex in examples]
    held_scores = held_out_scores(examples, groups, recipe)
    others = {name: values for name, values in scores.items() if name != "learned"}
    routers = {"learned": held_scores, **others}
    out = _by_group(examples, groups, routers, seeds)
    # All prompts at once, each scored by the model that never saw its group: the thresholds
    # then cut across groups, so this also asks whether scores from different models agree.
    pooled = {name: _brief(summarise(values, examples)) for name, values in routers.items()}
    pooled["random"] = _brief(summarise_random(examples, seeds))
    return {"how": "each task group scored by a model trained only on the other groups", "groups": out,
            "pooled": {"n": len(examples), **pooled}}
