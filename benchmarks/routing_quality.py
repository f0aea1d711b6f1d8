"""Routing quality of the learned router on the shared Arena data, the RouteLLM way.

For each (strong, weak) pair in the data's stats.json, next to the rules-only router and a
random router (mean of 200 seeds):
- k-fold: APGR, CPT(50%), CPT(80%) and AUC of the learned router with the shipped recipe,
  each fold scored by a model trained without it; repeated with reshuffled folds (--repeats)
  and averaged, since one 10-fold split of 300 prompts moves APGR by about 0.01.
- transfer: the prompts fall into task types (code / math / writing / other); each type is
  scored by a model trained only on the other types. APGR inside each type, their mean, and
  pooled (all prompts ranked together, so scores from different models must also agree).
- margins: learned minus rules and minus random, with a 95% bootstrap interval (prompts
  resampled); random's APGR is 0.5 on any sample.
- when the embedding extra's packages import (see benchmarks/embed_router.py): the same
  figures for a MiniLM-embedding router and a blend of it with the learned one, and latency.

Hyperparameters are the shipped recipe's, not tuned on these folds; `--recipe KEY=VALUE`
(repeatable) measures another, e.g. the pre-0.2 one:
    --recipe words=true --recipe panel_tau=null --recipe l2_numeric=0.1 --recipe l2_category=0.2

Run: python benchmarks/routing_quality.py [--data DIR] [--folds K] [--repeats R] [--recipe K=V] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "arena_bench_v1"
METRICS = ("apgr", "cpt50", "cpt80", "auc")


def pairs(data: Path) -> list[tuple[str, str]]:
    stats = json.loads((data / "stats.json").read_text(encoding="utf-8"))
    return [(v["strong"], v["weak"]) for v in stats.values() if isinstance(v, dict) and {"strong", "weak"} <= set(v)]


def recipe_from(overrides: list[str]) -> Any:
    from routecli.routing.learned import load
    from routecli.routing.train import Recipe

    recipe = Recipe.from_dict(load().weights.get("recipe", {}))
    for item in overrides:
        key, _, raw = item.partition("=")
        if key not in recipe.__dataclass_fields__:
            raise SystemExit(f"--recipe {item}: no such field; fields: {', '.join(recipe.__dataclass_fields__)}")
        recipe = replace(recipe, **{key: json.loads(raw)})
    return recipe


def _mean_metrics(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in METRICS:
        values = [r[key] for r in runs if r[key] is not None]
        out[key] = math.fsum(values) / len(values) if values else None
    out["apgr_runs"] = [round(r["apgr"], 4) for r in runs]
    return out


def _transfer(examples: list, groups: list[str], scores: dict[str, list[float]], seeds: int) -> dict[str, Any]:
    from routecli.routing.evaluate import _by_group, summarise, summarise_random

    by_group = _by_group(examples, groups, scores, seeds)
    out: dict[str, Any] = {"groups": by_group, "pooled": {}, "mean": {}}
    for name in list(scores) + ["random"]:
        out["pooled"][name] = (summarise_random(examples, seeds) if name == "random" else summarise(scores[name], examples))["apgr"]
        out["mean"][name] = math.fsum(row[name]["apgr"] for row in by_group.values()) / len(by_group)
    return out


def measure(rows: list, strong: str, weak: str, recipe: Any, args: argparse.Namespace, embed: Any) -> dict[str, Any]:
    from routecli.routing import CLASSIFIERS
    from routecli.routing.evaluate import (bootstrap_margin, cross_scores, folds, held_out_scores, scores_of,
                                           summarise, summarise_random, task_group)
    from routecli.routing.train import pair_examples, target, with_features

    examples = with_features(pair_examples(rows, strong, weak, "the data", recipe))
    groups = [task_group(ex.signals, ex.prompt) for ex in examples]
    kfold = [cross_scores(examples, recipe, args.folds, r) for r in range(args.repeats)]
    transfer = held_out_scores(examples, groups, recipe)
    scores_k = {"learned": kfold[0], "rules": scores_of(CLASSIFIERS["rules"][0], examples)}
    scores_t = {"learned": transfer, "rules": scores_k["rules"]}
    routers = {
        "learned": _mean_metrics([summarise(s, examples) for s in kfold]),
        "rules": summarise(scores_k["rules"], examples),
        "random": summarise_random(examples, args.seeds),
    }
    if embed is not None:
        from embed_router import blend, ridge_scores

        vectors = embed.vectors([ex.prompt for ex in examples])
        labels = [target(ex, recipe) for ex in examples]
        runs_e, runs_b = [], []
        for r, learned in enumerate(kfold):
            e = ridge_scores(vectors, labels, folds(examples, args.folds, r))
            runs_e.append(summarise(e, examples))
            runs_b.append(summarise(blend(learned, e), examples))
            if r == 0:
                scores_k["embed"], scores_k["blend"] = e, blend(learned, e)
        routers["embed"], routers["blend"] = _mean_metrics(runs_e), _mean_metrics(runs_b)
        scores_t["embed"] = ridge_scores(vectors, labels, groups)
        scores_t["blend"] = blend(transfer, scores_t["embed"])
    margins = {
        "k-fold vs rules": bootstrap_margin(kfold[0], scores_k["rules"], examples, args.draws),
        "k-fold vs random": bootstrap_margin(kfold[0], 0.5, examples, args.draws),
        "transfer vs rules": bootstrap_margin(transfer, scores_t["rules"], examples, args.draws),
        "transfer vs random": bootstrap_margin(transfer, 0.5, examples, args.draws),
    }
    if embed is not None:
        margins["k-fold embed vs learned"] = bootstrap_margin(scores_k["embed"], kfold[0], examples, args.draws)
        margins["k-fold blend vs learned"] = bootstrap_margin(scores_k["blend"], kfold[0], examples, args.draws)
    return {
        "strong": strong, "weak": weak, "n": len(examples),
        "strong_mean": math.fsum(ex.strong for ex in examples) / len(examples),
        "weak_mean": math.fsum(ex.weak for ex in examples) / len(examples),
        "kfold": routers, "transfer": _transfer(examples, groups, scores_t, args.seeds), "margins": margins,
    }


class EmbedCache:
    """One embedding per distinct prompt, shared by the pairs."""

    def __init__(self) -> None:
        from embed_router import Embedder

        self.embedder = Embedder()
        self.cache: dict[str, Any] = {}

    def vectors(self, prompts: list[str]) -> Any:
        import numpy as np

        for prompt in prompts:
            if prompt not in self.cache:
                self.cache[prompt] = self.embedder(prompt)
        return np.stack([self.cache[p] for p in prompts])


def _f(value: float | None, pct: bool = False) -> str:
    if value is None:
        return "never" if pct else "-"
    return f"{value:.1%}" if pct else f"{value:.3f}"


def show(report: dict[str, Any], folds: int, repeats: int) -> None:
    print(f"\n{report['strong']} vs {report['weak']}: {report['n']} prompts, "
          f"mean grade {report['strong_mean']:.3f} vs {report['weak_mean']:.3f}")
    groups = list(report["transfer"]["groups"])
    print(f"  {'':9}{f'k-fold ({folds}-fold x {repeats})':^31} | transfer APGR (train on the other task types)")
    print(f"  {'router':<9}{'APGR':>7}{'CPT50':>8}{'CPT80':>8}{'AUC':>7}  | {'pooled':>7}{'mean':>7}  "
          + "".join(f"{g[:7]:>8}" for g in groups))
    for name, r in report["kfold"].items():
        t = report["transfer"]
        cells = "".join(f"{_f(t['groups'][g][name]['apgr']):>8}" for g in groups)
        print(f"  {name:<9}{_f(r['apgr']):>7}{_f(r['cpt50'], True):>8}{_f(r['cpt80'], True):>8}{_f(r['auc']):>7}  | "
              f"{_f(t['pooled'][name]):>7}{_f(t['mean'][name]):>7}  {cells}")
    print("  " + " " * 44 + "n: " + " ".join(f"{g[:6]}={report['transfer']['groups'][g]['n']}" for g in groups))
    for what, m in report["margins"].items():
        print(f"  APGR {what:<24} {m['mean']:+.3f}  95% [{m['low']:+.3f}, {m['high']:+.3f}]")


def summary(reports: list[dict[str, Any]]) -> None:
    names = list(reports[0]["kfold"])
    print("\nmean APGR over the pairs:")
    print(f"  {'router':<9}{'k-fold':>8}{'transfer pooled':>17}{'transfer mean':>15}")
    for name in names:
        k = math.fsum(r["kfold"][name]["apgr"] for r in reports) / len(reports)
        p = math.fsum(r["transfer"]["pooled"][name] for r in reports) / len(reports)
        m = math.fsum(r["transfer"]["mean"][name] for r in reports) / len(reports)
        print(f"  {name:<9}{k:>8.3f}{p:>17.3f}{m:>15.3f}")


def latencies(embed: Any) -> None:
    """Per-prompt cost of each router at the sizes route_latency.py uses (embedding: model + ridge)."""
    import statistics

    from embed_router import latency
    from routecli.domain import Message, Request
    from routecli.routing.learned import score_request

    text = "Explain the trade-offs of this python function and prove it terminates for every input. " * 200
    for label, size in (("200 chars", 200), ("10 kB", 10_000)):
        request = Request((Message("user", text[:size]),))
        times = []
        for _ in range(300):
            start = time.perf_counter()
            score_request(request)
            times.append((time.perf_counter() - start) * 1000)
        times.sort()
        e50, e99 = latency(embed.embedder, text[:size])
        print(f"  {label:>9}: learned p50 {statistics.median(times):.3f} ms p99 {times[int(len(times) * 0.99)]:.3f} ms"
              f" | embedding p50 {e50:.1f} ms p99 {e99:.1f} ms")
    print(f"  embedding model load {embed.embedder.load_ms:.0f} ms (learned: weights parse, see route_latency.py)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="directory with pairs.jsonl and stats.json")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3, help="k-fold repeated with reshuffled folds")
    parser.add_argument("--seeds", type=int, default=200, help="random router: seeds averaged")
    parser.add_argument("--draws", type=int, default=500, help="bootstrap resamples for the margins")
    parser.add_argument("--recipe", action="append", default=[], metavar="KEY=VALUE", help="change the shipped recipe")
    parser.add_argument("--no-embed", action="store_true", help="skip the embedding router even when installed")
    parser.add_argument("--json", action="store_true", help="print the full reports as JSON")
    args = parser.parse_args()
    if not (args.data / "pairs.jsonl").exists():
        print(f"no shared data at {args.data}; pass --data", file=sys.stderr)
        return 2
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from embed_router import missing
    from routecli.routing.learned import VERSION
    from routecli.routing.train import read_pairs

    recipe = recipe_from(args.recipe)
    why_not = "--no-embed" if args.no_embed else missing()
    embed = EmbedCache() if why_not is None else None
    rows = read_pairs(args.data / "pairs.jsonl")
    start = time.perf_counter()
    reports = [measure(rows, strong, weak, recipe, args, embed) for strong, weak in pairs(args.data)]
    if args.json:
        print(json.dumps({"recipe": recipe.as_dict(), "reports": reports}, indent=2))
        return 0
    changed = f" with --recipe {' '.join(args.recipe)}" if args.recipe else ""
    print(f"routing quality on {args.data.name}: shipped weights {VERSION}, their recipe{changed}")
    print("embedding router: " + ("measured (benchmarks/embed_router.py)" if embed else f"skipped ({why_not})"))
    for report in reports:
        show(report, args.folds, args.repeats)
    summary(reports)
    if embed is not None:
        print("\nlatency per prompt:")
        latencies(embed)
    print(f"({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
