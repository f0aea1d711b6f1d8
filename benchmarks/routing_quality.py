"""Routing quality of the shipped learned router on the shared Arena data, the RouteLLM way.

For each (strong, weak) pair in the data's stats.json: APGR, CPT(50%), CPT(80%) and AUC of
the learned router (10-fold cross-validated, since the shipped weights were trained on these
prompts), next to the rules-only router and a random router (mean of 200 seeds). Then the
transfer split: the prompts fall into task types (code / math / writing / other); each type
is scored by a model trained only on the other types, and measured inside that type.

Run: python benchmarks/routing_quality.py [--data DIR] [--folds K] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "arena_bench_v1"


def pairs(data: Path) -> list[tuple[str, str]]:
    stats = json.loads((data / "stats.json").read_text(encoding="utf-8"))
    return [(v["strong"], v["weak"]) for v in stats.values() if isinstance(v, dict) and {"strong", "weak"} <= set(v)]


def _f(value: float | None, pct: bool = False) -> str:
    if value is None:
        return "never" if pct else "-"
    return f"{value:.1%}" if pct else f"{value:.3f}"


def show(report: dict) -> None:
    print(f"\n{report['strong']} vs {report['weak']}: {report['n']} prompts, "
          f"mean grade {report['strong_mean']:.3f} vs {report['weak_mean']:.3f}")
    print(f"  {'router':<9}{'APGR':>7}{'CPT50':>8}{'CPT80':>8}{'AUC':>7}")
    for name, r in report["routers"].items():
        print(f"  {name:<9}{_f(r['apgr']):>7}{_f(r['cpt50'], True):>8}{_f(r['cpt80'], True):>8}{_f(r['auc']):>7}")
    print(f"  learned: {report['routers']['learned']['how']}")
    print("  transfer (train on the other task types, measure inside this one), APGR learned / rules / random:")
    for group, row in report["transfer"]["groups"].items():
        print(f"    {group:<8} n={row['n']:<4} {_f(row['learned']['apgr'])}  {_f(row['rules']['apgr'])}  "
              f"{_f(row['random']['apgr'])}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="directory with pairs.jsonl and stats.json")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="print the full reports as JSON")
    args = parser.parse_args()
    if not (args.data / "pairs.jsonl").exists():
        print(f"no shared data at {args.data}; pass --data", file=sys.stderr)
        return 2
    from routecli.routing.evaluate import evaluate
    from routecli.routing.learned import VERSION

    reports = []
    start = time.perf_counter()
    for strong, weak in pairs(args.data):
        reports.append(evaluate(args.data / "pairs.jsonl", strong, weak, k=args.folds, transfer=True))
    if args.json:
        print(json.dumps(reports, indent=2))
        return 0
    print(f"routing quality on {args.data.name} (shipped weights {VERSION}; {args.folds}-fold)")
    for report in reports:
        show(report)
    mean = {name: sum(r["routers"][name]["apgr"] for r in reports) / len(reports) for name in ("learned", "rules", "random")}
    print("\nmean APGR over the pairs: " + ", ".join(f"{n} {v:.3f}" for n, v in mean.items()))
    print(f"({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
