"""Nested cross-validation of router recipes on the shared Arena data: does any beat the shipped one?

Trying many recipes and quoting the best one's k-fold APGR flatters it: with ~300 prompts one
figure moves by ~0.02, and the best of several is partly the luckiest. Here the choice is made
inside each outer training set, so the figure is an honest estimate of "search, then ship":
for each (strong, weak) pair, outer 10-fold (repeated --repeats times with reshuffled folds);
inside each outer fold's training prompts, 5-fold cross-validation picks the candidate with the
best APGR; the pick, trained on all of the outer training prompts, scores the outer fold. The
shipped recipe and the rules router are scored on the same outer folds, and the margins are
paired over outer folds (APGR inside each fold; mean and 95% t-interval over the 10 folds).

Candidates (none is shipped; see the README's learned-router section for what they scored):
- the shipped recipe; its panel weighting sharper (panel_tau 0.05); no prior; L2 x3 and x1/3;
- word tokens (l2_word 0.3);
- structural features beyond the shipped ones, chosen as ones that should carry over to other
  workloads (puzzles, stated assumptions, "explain to a child", personas, answer options, units,
  idea lists, long-form writing, API names, whether the prompt opens with a question word or an
  imperative), with the shipped and with 3x stronger L2;
- multi-pair labels: the weighted panel's grade gap to the mean of the two GPT-4 models, ramped,
  averaged with the pair's own gap (several weak/strong pairs at once instead of one).

Run: python benchmarks/routing_search.py [--data DIR] [--repeats R] [--json]   (~30 s per repeat)
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "arena_bench_v1"
INNER_FOLDS = 5
INNER_REPEAT = 99  # the inner split's reshuffle: fixed, and different from every outer one

_EXTRA = {
    "x:puzzle": r"\b(riddle|puzzle|trick question|brain ?teaser|lateral)\b",
    "x:assume": r"\b(assume|assuming|suppose|given that|if it takes|if i have|if you have|there are \d+)\b",
    "x:simple_audience": r"\b(\d+[- ]year[- ]old|child|children|kids?|eli5|layman|simple terms|beginner)\b",
    "x:persona": r"\b(act as|you are an?|pretend|role ?play|imagine you)\b",
    "x:choices": r"(?m)^\s*\(?[a-d][).:]\s",
    "x:units": r"\d\s*(km|kg|m|cm|mm|g|hours?|minutes?|seconds?|mph|%|dollars?|\$|ohms?|watts?|°)",
    "x:ideas": r"\b(ideas?|brainstorm|suggestions?|names? for|list of|examples of)\b",
    "x:write_long": r"\b(essay|article|story|blog|poem|letter|email|speech|paragraphs?|\d+ words)\b",
}
_EXTRA_RE = {name: re.compile(pattern, re.IGNORECASE) for name, pattern in _EXTRA.items()}
_API = re.compile(r"\b[a-z]+\.[a-z_]+\(|`[^`]+`|\b[a-z]+_[a-z_]+\b")
_WH = frozenset("what how why who when where which can is are do does".split())
_IMPERATIVE = frozenset("write create generate give make list explain describe tell provide".split())


def extra_features(prompt: str) -> dict[str, float]:
    text = prompt[:2500]
    out = {name: math.log1p(len(pattern.findall(text))) for name, pattern in _EXTRA_RE.items()}
    out["x:specific_api"] = math.log1p(len(_API.findall(text)))
    first = (re.findall(r"[a-z]+", text.lower()[:60]) or [""])[0]
    out["x:starts_wh"] = float(first in _WH)
    out["x:starts_imperative"] = float(first in _IMPERATIVE)
    return out


@dataclass(frozen=True)
class Candidate:
    name: str
    recipe: Any
    extra: bool = False  # add extra_features()
    multi: bool = False  # multi-pair labels


def candidates(shipped: Any) -> list[Candidate]:
    stronger = replace(shipped, l2_numeric=shipped.l2_numeric * 3, l2_category=shipped.l2_category * 3)
    weaker = replace(shipped, l2_numeric=shipped.l2_numeric / 3, l2_category=shipped.l2_category / 3)
    return [
        Candidate("shipped", shipped),
        Candidate("panel_tau=0.05", replace(shipped, panel_tau=0.05)),
        Candidate("no prior", replace(shipped, prior={})),
        Candidate("l2 x3", stronger),
        Candidate("l2 x1/3", weaker),
        Candidate("words", replace(shipped, words=True, l2_word=0.3)),
        Candidate("extra features", shipped, extra=True),
        Candidate("extra, l2 x3", stronger, extra=True),
        Candidate("multi-pair labels", shipped, multi=True),
    ]


def multi_labels(examples: list, rows: dict[str, dict], strong: str, weak: str, recipe: Any) -> list[float]:
    """Half the pair's own ramped gap, half the panel's: each panel model's grade gap to the mean of
    the two best models, ramped like the pair's, weighted toward the weak model's strength."""
    from routecli.routing.train import model_means, panel_weights, soft_label

    means = model_means(list(rows.values()))
    top = sorted(means, key=lambda m: -means[m])[:2]
    panel = {m: w for m, w in panel_weights(means, strong, weak, recipe).items() if m not in top}
    labels = []
    for ex in examples:
        grades = rows[ex.id]["scores"]
        best = statistics.fmean(float(grades[m]) for m in top if isinstance(grades.get(m), (int, float)))
        seen = [(w, soft_label(best - float(grades[m]), recipe.margin)) for m, w in panel.items()
                if isinstance(grades.get(m), (int, float))]
        total = math.fsum(w for w, _ in seen)
        panel_part = math.fsum(w * y for w, y in seen) / total if total else soft_label(ex.gap, recipe.margin)
        labels.append(0.5 * soft_label(ex.gap, recipe.margin) + 0.5 * panel_part)
    return labels


def prepared(base: list, rows: dict, strong: str, weak: str, cands: list[Candidate]) -> dict[str, tuple]:
    """Per candidate: (its examples, its labels, its recipe). Examples share prompts, not dicts."""
    from routecli.routing.train import pair_examples, target

    out = {}
    for cand in cands:
        examples = pair_examples(list(rows.values()), strong, weak, "the data", cand.recipe)
        by_id = {ex.id: ex for ex in base}
        for ex in examples:
            ex.numeric, ex.sparse, ex.signals = dict(by_id[ex.id].numeric), by_id[ex.id].sparse, by_id[ex.id].signals
            if cand.extra:
                ex.numeric.update(extra_features(ex.prompt))
        labels = (multi_labels(examples, rows, strong, weak, cand.recipe) if cand.multi
                  else [target(ex, cand.recipe) for ex in examples])
        out[cand.name] = (examples, labels, cand.recipe)
    return out


def fit_score(prep: tuple, train: list[int], test: list[int]) -> list[float]:
    from routecli.routing.learned import Model
    from routecli.routing.train import fit

    examples, labels, recipe = prep
    model = Model(fit([examples[i] for i in train], recipe, labels=[labels[i] for i in train]))
    return [model.score_features(examples[i]) for i in test]


def pick(preps: dict[str, tuple], train: list[int], base: list) -> str:
    """The candidate with the best inner k-fold APGR on these training prompts (first wins a tie)."""
    from routecli.routing.evaluate import folds, summarise

    inner = folds([base[i] for i in train], INNER_FOLDS, INNER_REPEAT)
    best: tuple[float, str] | None = None
    for name, prep in preps.items():
        scores: dict[int, float] = {}
        for k in range(INNER_FOLDS):
            fit_on = [i for i, f in zip(train, inner) if f != k]
            held = [i for i, f in zip(train, inner) if f == k]
            scores.update(zip(held, fit_score(prep, fit_on, held)))
        value = summarise([scores[i] for i in train], [base[i] for i in train])["apgr"]
        if best is None or value > best[0]:
            best = (value, name)
    assert best is not None
    return best[1]


def t_interval(values: list[float], independent: int = 10) -> dict[str, float]:
    """Mean and 95% interval of per-fold differences. Repeats reshuffle the same prompts, so they
    steady the mean but add no independent evidence: the spread is divided by the 10 folds of one
    split (t quantile for 9 degrees of freedom), not by every fold of every repeat."""
    mean = statistics.fmean(values)
    half = 2.262 * statistics.stdev(values) / math.sqrt(independent)
    return {"mean": mean, "low": mean - half, "high": mean + half}


def measure(rows: dict, strong: str, weak: str, shipped: Any, repeats: int, log: Callable) -> dict[str, Any]:
    from routecli.routing import CLASSIFIERS
    from routecli.routing.evaluate import folds, scores_of, summarise
    from routecli.routing.train import pair_examples, with_features

    base = with_features(pair_examples(list(rows.values()), strong, weak, "the data", shipped))
    preps = prepared(base, rows, strong, weak, candidates(shipped))
    rules = scores_of(CLASSIFIERS["rules"][0], base)
    n, picks = len(base), Counter()
    runs: dict[str, list[float]] = {"nested": [], "shipped": []}
    per_fold: dict[str, list[float]] = {"nested - rules": [], "shipped - rules": [], "nested - shipped": []}
    for r in range(repeats):
        outer = folds(base, 10, r)
        scores = {"nested": [0.0] * n, "shipped": [0.0] * n}
        for k in range(10):
            train = [i for i in range(n) if outer[i] != k]
            test = [i for i in range(n) if outer[i] == k]
            chosen = pick(preps, train, base)
            picks[chosen] += 1
            for key, name in (("nested", chosen), ("shipped", "shipped")):
                for i, s in zip(test, fit_score(preps[name], train, test)):
                    scores[key][i] = s
            fold = [base[i] for i in test]
            a = {key: summarise([v[i] for i in test], fold)["apgr"] for key, v in (*scores.items(), ("rules", rules))}
            per_fold["nested - rules"].append(a["nested"] - a["rules"])
            per_fold["shipped - rules"].append(a["shipped"] - a["rules"])
            per_fold["nested - shipped"].append(a["nested"] - a["shipped"])
        for key, values in runs.items():
            values.append(summarise(scores[key], base)["apgr"])
        log(f"  {weak}: repeat {r + 1}/{repeats} done")
    return {
        "strong": strong, "weak": weak, "n": n,
        "apgr": {key: statistics.fmean(v) for key, v in runs.items()} | {"rules": summarise(rules, base)["apgr"]},
        "apgr_runs": runs, "picks": dict(picks.most_common()),
        "margins": {key: t_interval(v) for key, v in per_fold.items()},
    }


def show(report: dict[str, Any]) -> None:
    a = report["apgr"]
    print(f"\n{report['strong']} vs {report['weak']} ({report['n']} prompts)")
    print(f"  APGR  nested search {a['nested']:.3f}   shipped recipe {a['shipped']:.3f}   rules {a['rules']:.3f}")
    for key, m in report["margins"].items():
        print(f"  {key:<17} {m['mean']:+.3f}  95% [{m['low']:+.3f}, {m['high']:+.3f}]  (paired over outer folds)")
    print("  picked: " + ", ".join(f"{name} {count}" for name, count in report["picks"].items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="directory with pairs.jsonl and stats.json")
    parser.add_argument("--repeats", type=int, default=3, help="outer 10-fold repeated with reshuffled folds")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not (args.data / "pairs.jsonl").exists():
        print(f"no shared data at {args.data}; pass --data", file=sys.stderr)
        return 2
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from routing_quality import pairs
    from routecli.routing.learned import load
    from routecli.routing.train import Recipe, read_pairs

    shipped = Recipe.from_dict(load().weights.get("recipe", {}))
    rows = {str(row.get("id", i)): row for i, row in enumerate(read_pairs(args.data / "pairs.jsonl"))}
    start = time.perf_counter()
    log = (lambda _: None) if args.json else (lambda line: print(line, file=sys.stderr, flush=True))
    reports = [measure(rows, s, w, shipped, args.repeats, log) for s, w in pairs(args.data)]
    if args.json:
        print(json.dumps(reports, indent=2))
        return 0
    print(f"nested search over {len(candidates(shipped))} candidates, outer 10-fold x {args.repeats}, inner {INNER_FOLDS}-fold")
    for report in reports:
        show(report)
    print(f"({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
