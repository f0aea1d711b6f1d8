"""Escalation quality: does `assess()` confidence predict a weak answer's low grade, and what
does "weak first, escalate when unsure" buy against always-weak and always-strong?

Data: the shared Arena-Bench-V1 answers (model_answer/<model>.jsonl) and their GPT-4 grades
(pairs.jsonl: grade/10), read from ../shared, never copied. The answer files carry no finish
reason, so the finish_reason checks never fire here; the text checks stand in for them.

Per (strong, weak) pair of the data's stats.json:
- AUROC of (1 - confidence) for two meanings of "low": absolute, the weak answer graded 5/10 or
  lower; relative, the strong answer graded at least 2 points higher (escalating would have paid).
- quality (mean grade 0..1) and cost of always-weak, always-strong, and weak-first with an
  escalation below each threshold. Cost counts calls at relative prices: a strong call costs 1,
  a weak call PRICE_RATIO (0.1 unless --price-ratio), and an escalated request pays both.
  "random" is the mean grade of escalating the same share of requests at random.
The weights in assess.py were fitted on these answers (with 13 other models'); weights fitted
without the weak model's answers and without the prompt score it the same to +-0.01 AUROC
(scripts/fit_assess.py prints both), so the figures here are not an artefact of that fit.

Run: python benchmarks/escalation_quality.py [--data DIR] [--price-ratio R] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA = Path(os.environ.get("ROUTECLI_ARENA_DATA") or
            Path(__file__).resolve().parents[2] / "shared" / "data" / "arena_bench_v1")
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
PRICE_RATIO = 0.1
LOW_GRADE = 0.5  # absolute: 5/10 or lower
GAP = 0.2  # relative: the strong answer 2+ points better on the judge's 1-10 scale
STRONG_MODELS = ("gpt-4-1106-preview", "gpt-4-0314")


@dataclass(frozen=True)
class Row:
    """One graded answer: a prompt, the model that answered it, its text and grade (0.1..1)."""

    qid: str
    prompt: str
    model: str
    answer: str
    grade: float


def load(data: Path) -> tuple[list[dict[str, Any]], dict[str, dict[str, str]]]:
    """The graded prompts (pairs.jsonl) and every model's answers: {model_id: {question_id: text}}."""
    prompts = [json.loads(line) for line in (data / "pairs.jsonl").open(encoding="utf-8") if line.strip()]
    answers: dict[str, dict[str, str]] = {}
    for path in sorted((data / "data" / "arena-bench-v1" / "model_answer").glob("*.jsonl")):
        for line in path.open(encoding="utf-8"):
            if line.strip():
                entry = json.loads(line)
                answers.setdefault(entry["model_id"], {})[entry["question_id"]] = entry["choices"][0]["turns"][0]
    return prompts, answers


def graded_rows(data: Path, models: tuple[str, ...] | None = None) -> list[Row]:
    """Every (prompt, model) with both a grade and an answer, in file order; optionally some models only."""
    prompts, answers = load(data)
    rows = []
    for entry in prompts:
        for model, grade in sorted(entry["scores"].items()):
            text = answers.get(model, {}).get(entry["id"])
            if text is not None and (models is None or model in models):
                rows.append(Row(entry["id"], entry["prompt"], model, text, float(grade)))
    return rows


def confidences(rows: list[Row]) -> list[float]:
    from routecli.domain import Message, Reply, Request
    from routecli.routing.assess import assess
    from routecli.routing.signals import extract_signals

    signals: dict[str, dict] = {}
    out = []
    for row in rows:
        request = Request((Message("user", row.prompt),))
        if row.qid not in signals:
            signals[row.qid] = extract_signals(request)
        reply = Reply(row.answer, None, row.model)
        out.append(assess(request, reply, signals=signals[row.qid]).confidence)
    return out


def pair_report(data: Path, strong: str, weak: str, price_ratio: float) -> dict[str, Any]:
    from routecli.routing.evaluate import auc

    by_qid = {row.qid: row for row in graded_rows(data, (strong,))}
    rows = [row for row in graded_rows(data, (weak,)) if row.qid in by_qid]
    conf = confidences(rows)
    weak_g = [row.grade for row in rows]
    strong_g = [by_qid[row.qid].grade for row in rows]
    doubt = [1.0 - c for c in conf]
    n = len(rows)
    policies = [_policy("always-weak", weak_g, 0.0, price_ratio, weak_g, strong_g),
                _policy("always-strong", strong_g, 1.0, price_ratio, weak_g, strong_g)]
    for threshold in THRESHOLDS:
        up = [c < threshold for c in conf]
        grades = [s if u else w for u, w, s in zip(up, weak_g, strong_g)]
        policy = _policy(f"escalate<{threshold}", grades, sum(up) / n, price_ratio, weak_g, strong_g)
        escalated_low = [w <= LOW_GRADE + 1e-9 for u, w in zip(up, weak_g) if u]
        policy["low_share"] = sum(escalated_low) / len(escalated_low) if escalated_low else None
        policies.append(policy)
    return {
        "strong": strong, "weak": weak, "n": n,
        "auroc_low_abs": auc(doubt, [w <= LOW_GRADE + 1e-9 for w in weak_g]),
        "auroc_low_rel": auc(doubt, [s - w >= GAP - 1e-9 for w, s in zip(weak_g, strong_g)]),
        "low_abs_rate": sum(w <= LOW_GRADE + 1e-9 for w in weak_g) / n,
        "low_rel_rate": sum(s - w >= GAP - 1e-9 for w, s in zip(weak_g, strong_g)) / n,
        "policies": policies,
    }


def _policy(name: str, grades: list[float], escalated: float, ratio: float,
            weak_g: list[float], strong_g: list[float]) -> dict[str, Any]:
    weak_mean, strong_mean = sum(weak_g) / len(weak_g), sum(strong_g) / len(strong_g)
    quality = sum(grades) / len(grades)
    if name == "always-strong":
        cost = 1.0
    else:  # every request pays a weak call; the escalated ones pay a strong call on top
        cost = ratio + escalated
    gap = strong_mean - weak_mean
    return {
        "policy": name, "quality": quality, "escalated": escalated, "cost": cost,
        "recovered": (quality - weak_mean) / gap if gap else None,
        "random": weak_mean + escalated * gap if name.startswith("escalate") else None,
        "low_share": None,
    }


def pairs(data: Path) -> list[tuple[str, str]]:
    stats = json.loads((data / "stats.json").read_text(encoding="utf-8"))
    return [(v["strong"], v["weak"]) for v in stats.values() if isinstance(v, dict) and {"strong", "weak"} <= set(v)]


def show(report: dict[str, Any]) -> None:
    print(f"\n{report['weak']} first, {report['strong']} on escalation: {report['n']} prompts")
    print(f"  AUROC of 1-confidence: low = grade <= 5/10 {report['auroc_low_abs']:.3f} "
          f"({report['low_abs_rate']:.0%} of answers);  low = strong 2+ points better "
          f"{report['auroc_low_rel']:.3f} ({report['low_rel_rate']:.0%})")
    print(f"  {'policy':<16}{'quality':>8}{'random':>8}{'gap won':>9}{'escalated':>11}{'of them low':>13}{'cost':>7}")
    for p in report["policies"]:
        random = f"{p['random']:.3f}" if p["random"] is not None else "-"
        won = f"{p['recovered']:.0%}" if p["recovered"] is not None else "-"
        low = f"{p['low_share']:.0%}" if p["low_share"] is not None else "-"
        print(f"  {p['policy']:<16}{p['quality']:>8.3f}{random:>8}{won:>9}{p['escalated']:>11.0%}{low:>13}{p['cost']:>7.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="directory with pairs.jsonl and data/ (or ROUTECLI_ARENA_DATA)")
    parser.add_argument("--price-ratio", type=float, default=PRICE_RATIO, help="price of a weak call / a strong call")
    parser.add_argument("--json", action="store_true", help="print the reports as JSON")
    args = parser.parse_args()
    if not (args.data / "pairs.jsonl").exists():
        print(f"no shared data at {args.data}; pass --data", file=sys.stderr)
        return 2
    start = time.perf_counter()
    reports = [pair_report(args.data, strong, weak, args.price_ratio) for strong, weak in pairs(args.data)]
    if args.json:
        print(json.dumps(reports, indent=2))
        return 0
    print(f"escalation quality on {args.data.name}; cost: strong call = 1, weak call = {args.price_ratio}; "
          "quality = mean GPT-4 grade 0..1;\ngap won = share of the strong-weak quality gap recovered; "
          "random = quality of escalating as many at random; of them low = escalated answers graded <= 5/10")
    for report in reports:
        show(report)
    print(f"\n({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
