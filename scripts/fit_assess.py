"""Fit the weights of routecli/routing/assess.py on the shared Arena answers, and say how well they hold.

    python scripts/fit_assess.py           # print the fitted WEIGHTS and the cross-validation report
    python scripts/fit_assess.py --write   # rewrite the WEIGHTS block in assess.py
    python scripts/fit_assess.py --check   # exit 1 if a fresh fit would change the shipped weights

Data: Arena-Bench-V1 (300 hard prompts; answers of 16 models graded 1-10 by GPT-4; Apache-2.0,
see its SOURCE.txt) read from ../shared, never copied. Rows: the answers of the 14 models that
are not GPT-4 (GPT-4 is the strong side of every pair). Label: graded 6/10 or better.

Model: logistic regression over assess.indicators(), L2-pulled toward PRIOR (what each sign is
believed to cost where the data shows little: checks that never fire here keep their prior), the
pull's strength chosen by 10-fold cross-validation grouped by prompt (all of a prompt's answers
in the same fold). Pure Python Newton steps: deterministic, a few seconds.
Reported: in-sample vs cross-validated AUROC, and per reference weak model the AUROC of weights
fitted without that model's answers and without the prompt's fold (nothing of it seen in fitting).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from routecli.routing import assess  # noqa: E402
from routecli.routing.evaluate import auc  # noqa: E402

MODULE = ROOT / "routecli" / "routing" / "assess.py"
FEATURES = tuple(assess.WEIGHTS)
# Logit change per sign before seeing data: each strong sign alone takes a clean answer (0.9)
# below the 0.7 default threshold (a drop of more than 1.35); weaker hints take it part way.
PRIOR = {
    "empty": -6.0, "refusal": -2.0, "content_filter": -3.0, "hedging": -1.5,
    "truncated:max_tokens": -2.5, "truncated:unclosed_code": -2.5, "truncated:mid_sentence": -1.0,
    "json_invalid": -2.5, "code_unparseable": -2.0, "code_missing": -1.0,
    "too_short_for_complex": -1.5, "language_mismatch": -2.5, "repetitive": -2.0,
}
PULLS = (1.0, 3.0, 10.0, 30.0, 100.0)  # L2 strength toward PRIOR, chosen by cross-validation
TIE = 0.0005  # log-loss differences below this are noise at this size
SHIPPED_PULL = 10.0  # the one the cross-validation chose; --check fails if it would choose another
FOLDS = 10
GOOD = 0.6  # label: graded 6/10 or better
CLEAN_CONFIDENCE = 0.9  # what an answer with no warning sign scores: sets BIAS


def _benchmark():
    """benchmarks/ is not a package: load its module by path (once), for the data loader."""
    if "escalation_quality" not in sys.modules:
        spec = importlib.util.spec_from_file_location("escalation_quality", ROOT / "benchmarks" / "escalation_quality.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["escalation_quality"] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules["escalation_quality"]


def dataset(data: Path) -> tuple[list, list[dict[str, float]], list[int]]:
    """Rows, their indicators (sparse) and labels."""
    from routecli.domain import Message, Reply, Request
    from routecli.routing.signals import extract_signals

    bench = _benchmark()
    rows = [row for row in bench.graded_rows(data) if row.model not in bench.STRONG_MODELS]
    signals: dict[str, dict] = {}
    xs = []
    for row in rows:
        request = Request((Message("user", row.prompt),))
        signals.setdefault(row.qid, extract_signals(request))
        xs.append(assess.indicators(request, Reply(row.answer, None, row.model), signals[row.qid]))
    return rows, xs, [int(row.grade >= GOOD - 1e-9) for row in rows]


def fit(xs: list[dict[str, float]], ys: list[int], pull: float, iterations: int = 25) -> tuple[float, dict[str, float]]:
    """(bias, weights) minimising log-loss + pull * sum((w - PRIOR)^2), by Newton's method."""
    names = ("",) + FEATURES  # "" is the bias, not pulled
    w = {name: PRIOR.get(name, 0.0) for name in FEATURES} | {"": 0.0}
    for _ in range(iterations):
        grad = {name: (2 * pull * (w[name] - PRIOR[name]) if name else 0.0) for name in names}
        hess = {(a, b): (2 * pull if a == b and a else (1e-9 if a == b else 0.0)) for a in names for b in names}
        for x, y in zip(xs, ys):
            p = _sigmoid(w[""] + sum(w[k] * v for k, v in x.items()))
            active = [("", 1.0)] + sorted(x.items())
            for a, va in active:
                grad[a] += (p - y) * va
                for b, vb in active:
                    hess[(a, b)] += p * (1 - p) * va * vb
        step = _solve([[hess[(a, b)] for b in names] for a in names], [grad[a] for a in names])
        for name, delta in zip(names, step):
            w[name] -= delta
        if max(abs(delta) for delta in step) < 1e-9:
            break
    return w.pop(""), w


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z))))


def _solve(matrix: list[list[float]], rhs: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting; the system is small and positive definite."""
    n = len(rhs)
    m = [row[:] + [value] for row, value in zip(matrix, rhs)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(col + 1, n):
            factor = m[r][col] / m[col][col]
            for c in range(col, n + 1):
                m[r][c] -= factor * m[col][c]
    out = [0.0] * n
    for r in range(n - 1, -1, -1):
        out[r] = (m[r][n] - sum(m[r][c] * out[c] for c in range(r + 1, n))) / m[r][r]
    return out


def predict(bias: float, weights: dict[str, float], x: dict[str, float]) -> float:
    return _sigmoid(bias + sum(weights[k] * v for k, v in x.items()))


def ranking(weights: dict[str, float], x: dict[str, float]) -> float:
    """The logit without the bias: each fold fits its own bias, which would reorder the many
    answers with no sign at all across folds and blur a pooled AUROC with noise."""
    return sum(weights[k] * v for k, v in x.items())


def fold_of(rows: list) -> list[int]:
    qids = sorted({row.qid for row in rows})  # hex ids: sorting them is a fixed shuffle
    index = {qid: i % FOLDS for i, qid in enumerate(qids)}
    return [index[row.qid] for row in rows]


def held_out(xs, ys, folds, pull: float, keep=lambda i: True) -> tuple[list[float], list[float]]:
    """Each row's probability and ranking score from weights fitted without its fold (and
    without the rows keep() refuses)."""
    probs, ranks = [0.0] * len(xs), [0.0] * len(xs)
    for k in range(FOLDS):
        train = [i for i in range(len(xs)) if folds[i] != k and keep(i)]
        bias, weights = fit([xs[i] for i in train], [ys[i] for i in train], pull)
        for i in range(len(xs)):
            if folds[i] == k:
                probs[i], ranks[i] = predict(bias, weights, xs[i]), ranking(weights, xs[i])
    return probs, ranks


def _log_loss(ps: list[float], ys: list[int]) -> float:
    return -sum(math.log(max(1e-12, p if y else 1 - p)) for p, y in zip(ps, ys)) / len(ys)


def report(data: Path) -> tuple[float, dict[str, float], list[str]]:
    rows, xs, ys = dataset(data)
    folds = fold_of(rows)
    lines = [f"{len(rows)} answers of {len({r.model for r in rows})} models, {sum(ys) / len(ys):.0%} graded >= 6/10"]
    losses = {}
    for pull in PULLS:
        ps, ranks = held_out(xs, ys, folds, pull)
        losses[pull] = _log_loss(ps, ys)
        lines.append(f"  pull {pull:>5}: {FOLDS}-fold log-loss {losses[pull]:.4f}, AUROC {auc(ranks, [bool(y) for y in ys]):.3f}")
    # the strongest pull whose loss is within TIE of the best: when the data cannot tell, trust the prior
    pull = max(p for p, loss in losses.items() if loss <= min(losses.values()) + TIE)
    if pull != SHIPPED_PULL:
        lines.append(f"NOTE: cross-validation now chooses pull {pull}, not SHIPPED_PULL {SHIPPED_PULL}: update it")
    bias, weights = fit(xs, ys, pull)
    in_sample = auc([predict(bias, weights, x) for x in xs], [bool(y) for y in ys])
    lines.append(f"chosen pull {pull}; in-sample AUROC {in_sample:.3f}; fitted bias {bias:.2f} "
                 f"(= {_sigmoid(bias):.2f} for a clean answer on these prompts; shipped bias gives {CLEAN_CONFIDENCE})")
    bench = _benchmark()
    for _, weak in bench.pairs(data):
        mine = [i for i, row in enumerate(rows) if row.model == weak]
        if not mine:
            continue
        _, ranks = held_out(xs, ys, folds, pull, keep=lambda i, weak=weak: rows[i].model != weak)
        shipped = [assess.score(xs[i]).confidence for i in mine]
        low = [rows[i].grade <= bench.LOW_GRADE + 1e-9 for i in mine]
        lines.append(f"  {weak}: AUROC for grade <= 5/10, weights never fitted on it {auc([-ranks[i] for i in mine], low):.3f}"
                     f", fitted on everything {auc([-predict(bias, weights, xs[i]) for i in mine], low):.3f}"
                     f", shipped {auc([-c for c in shipped], low):.3f}")
    return bias, weights, lines


def weights_block(weights: dict[str, float]) -> str:
    body = "".join(f'    "{name}": {weights[name]:.2f},\n' for name in FEATURES)
    return f"WEIGHTS: dict[str, float] = {{\n{body}}}"


def shipped_bias() -> float:
    return round(math.log(CLEAN_CONFIDENCE / (1 - CLEAN_CONFIDENCE)), 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=_benchmark().DATA)
    parser.add_argument("--write", action="store_true", help="rewrite the WEIGHTS block in assess.py")
    parser.add_argument("--check", action="store_true", help="exit 1 if the shipped weights differ from a fresh fit")
    args = parser.parse_args()
    if not (args.data / "pairs.jsonl").exists():
        print(f"no data at {args.data}: check out the shared data beside the repo, or pass --data", file=sys.stderr)
        return 2
    _, weights, lines = report(args.data)
    chosen_pull_moved = any(line.startswith("NOTE:") for line in lines)
    print("\n".join(lines))
    block = weights_block(weights)
    source = MODULE.read_text(encoding="utf-8")
    current = re.search(r"WEIGHTS: dict\[str, float\] = \{\n.*?\n\}", source, re.DOTALL)
    same = current is not None and current.group(0) == block and assess.BIAS == shipped_bias() and not chosen_pull_moved
    if args.check:
        print(f"assess.py weights {'match' if same else 'DIFFER from'} a fresh fit")
        return 0 if same else 1
    if args.write and current is not None:
        source = source.replace(current.group(0), block)
        source = re.sub(r"(?m)^BIAS = .*$", f"BIAS = {shipped_bias()}", source)
        MODULE.write_text(source, encoding="utf-8")
        print(f"wrote {MODULE.relative_to(ROOT)}")
    else:
        print(f"BIAS = {shipped_bias()}\n{block}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
