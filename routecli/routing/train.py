"""Train the learned router: pairs file -> labels -> L2 logistic regression -> weights dict.

Pure Python (no numpy): a few hundred to a few thousand prompts train in seconds, and the
same input gives the same bytes out (fixed iteration order, no randomness, rounded weights).

The label, "the strong model is needed", is soft (0..1), from two parts:
- the pair: gap = grade(strong) - grade(weak), ramped from 0 at gap <= 0 to 1 at gap >= margin
  (0.6: six points on the judge's 1-10 scale). Ties and weak wins are 0; a large gap counts
  more than a small one, since one judge grade per answer makes a 1-2 point gap half noise.
- the panel: 1 - the weighted mean grade, on this prompt, of the other graded models that are
  clearly weaker than the strong one (mean grade at least 0.1 below it), each weighted by how
  close its mean grade is to the weak model's (exp(-distance / panel_tau)): a prompt that
  models of the weak one's strength fail is one the weak model is likely to fail, while a
  much weaker model failing it says little. Many models' grades are a far less noisy sign
  than one weak model's grade.
label = pair_weight * pair + (1 - pair_weight) * panel; the pair alone when fewer than
panel_min panel grades exist (a file with only the two models). On the shared Arena data the
panel raised 10-fold APGR on all three reference pairs, and weighting it toward the weak
model's strength raised both the k-fold and the transfer figures a little more.

Features: the routing signals and text-shape statistics (features.py), not words
(`Recipe(words=True)` adds them). Words learned from a few hundred prompts name their topics,
and topics do not carry over to other workloads: on the shared Arena data, words added nothing
in k-fold cross-validation and lost a little APGR on every reference pair when training on
three task types and testing on the fourth (benchmarks/routing_quality.py --recipe words=true).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from routecli.domain import Message, Request
from routecli.errors import UsageError
from routecli.routing.features import featurize, prior_weight, standardise
from routecli.routing.optimise import lbfgs

FORMAT = "routecli-learned-1"
MIN_ROWS = 20
# What routing studies and gateways agree on, as the weights' starting point: math, code,
# multi-step reasoning and long prompts need strong models; open-ended writing, simple edits
# and one-liners rarely do.
# L2 pulls each weight toward its prior instead of toward 0, so a few hundred prompts of one
# kind (hard Arena prompts) can move these only as far as they show, and words learned from
# that data cannot wipe out what holds on other workloads. Logit units per standard deviation
# (numeric) or per occurrence (tokens); "name=*" covers every value of a categorical signal.
PRIOR = {
    "chars": 0.15,
    "math": 0.3,
    "code_words": 0.2,
    "t:exact_answer": 0.2,
    "t:open_ended": -0.3,
    "code_langs=*": 0.2,
    "reasoning=*": 0.2,
    "simple=*": -0.3,
    "domain=creative": -0.2,
}


@dataclass(frozen=True)
class Recipe:
    """Everything that shapes training; stored in the weights so k-fold re-training matches."""

    margin: float = 0.6
    pair_weight: float = 0.25
    panel_gap: float = 0.1
    panel_min: int = 3
    panel_tau: float | None = 0.1  # None: every panel model weighs the same
    words: bool = False  # word tokens as features; off: they do not transfer (see above)
    # Light: without words there are a few dozen features for a few hundred prompts. l2, words
    # and panel_tau are what 5-fold selection inside each outer fold's training set picked most
    # often on the shared data; every choice in that grid scored within 0.01 APGR of the others
    # on the outer folds (benchmarks/routing_quality.py --recipe KEY=VALUE measures one).
    l2_numeric: float = 0.03  # per standardised signal; signals carry over to other workloads
    l2_category: float = 0.06
    l2_word: float = 0.1  # with min_df, words cannot memorise a prompt
    min_df: int = 5  # with words: a word must appear in this many training prompts
    max_words: int = 2000
    bigrams: bool = False  # word pairs measured no better than single words, at twice the cost
    iterations: int = 200
    prior: dict[str, float] = field(default_factory=lambda: dict(PRIOR))

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "prior": dict(sorted(self.prior.items()))}

    def prior_for(self, feature: str) -> float:
        return prior_weight(self.prior, feature)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Recipe:
        # Weights written before a field existed were trained as if it had its old meaning.
        legacy = {"words": True, "panel_tau": None}
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        return cls(**{**{k: v for k, v in legacy.items() if k not in known}, **known})


@dataclass
class Example:
    id: str
    prompt: str
    category: str
    strong: float
    weak: float
    difficulty: float | None = None  # 1 - mean grade of the weaker panel; None without a panel
    numeric: dict[str, float] = field(default_factory=dict)
    sparse: set[str] = field(default_factory=set)
    signals: dict[str, Any] = field(default_factory=dict)

    @property
    def gap(self) -> float:
        return self.strong - self.weak


def target(example: Example, recipe: Recipe) -> float:
    pair = soft_label(example.gap, recipe.margin)
    if example.difficulty is None:
        return pair
    return recipe.pair_weight * pair + (1.0 - recipe.pair_weight) * example.difficulty


def soft_label(gap: float, margin: float) -> float:
    if margin <= 0:
        return 1.0 if gap > 0 else 0.0
    return min(1.0, max(0.0, gap / margin))


# ---------------------------------------------------------------- data


def read_pairs(path: Path) -> list[dict[str, Any]]:
    """The rows of a pairs JSONL file; each complaint names the line and the fix."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"No data file {path}: give a JSONL file of {{\"prompt\", \"scores\"}} lines") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory: give the JSONL file inside it, e.g. {path}/pairs.jsonl") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"Cannot read {path} ({exc.__class__.__name__}); give a readable UTF-8 JSONL file") from None
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise UsageError(f"{path} line {number} is not JSON; each line must be one JSON object") from None
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str) or not isinstance(row.get("scores"), dict):
            raise UsageError(f"{path} line {number} needs \"prompt\" (text) and \"scores\" ({{model: grade}})")
        rows.append(row)
    return rows


def model_means(rows: list[dict[str, Any]]) -> dict[str, float]:
    totals: dict[str, list[float]] = {}
    for row in rows:
        for model, grade in row["scores"].items():
            if _grade(grade):
                totals.setdefault(model, []).append(float(grade))
    return {model: math.fsum(g) / len(g) for model, g in sorted(totals.items())}


def pair_examples(
    rows: list[dict[str, Any]], strong: str, weak: str, path: Path | str = "the data", recipe: Recipe | None = None
) -> list[Example]:
    """Examples for rows graded for both models; errors name the models the data does have."""
    recipe = recipe or Recipe()
    means = model_means(rows)
    for role, model in (("strong", strong), ("weak", weak)):
        if model not in means:
            shown = ", ".join(list(means)[:20]) + (" ..." if len(means) > 20 else "")
            raise UsageError(f"--{role} {model!r} is not graded in {path}; models there: {shown or 'none'}")
    if strong == weak:
        raise UsageError("--strong and --weak name the same model; pick two different ones")
    panel = panel_weights(means, strong, weak, recipe)
    examples = []
    for number, row in enumerate(rows):
        grades = row["scores"]
        s, w = grades.get(strong), grades.get(weak)
        if not (_grade(s) and _grade(w)):
            continue
        seen = [(float(grades[m]), weight) for m, weight in panel.items() if _grade(grades.get(m))]
        total = math.fsum(weight for _, weight in seen)
        difficulty = (
            1.0 - math.fsum(g * weight for g, weight in seen) / total
            if len(seen) >= recipe.panel_min and total > 0 else None
        )
        examples.append(Example(str(row.get("id", number)), row["prompt"], str(row.get("category") or ""),
                                float(s), float(w), difficulty))
    if len(examples) < MIN_ROWS:
        raise UsageError(
            f"Only {len(examples)} rows of {path} grade both {strong} and {weak}; need at least {MIN_ROWS}"
        )
    return examples


def panel_weights(means: dict[str, float], strong: str, weak: str, recipe: Recipe) -> dict[str, float]:
    """The models clearly weaker than the strong one, weighted by closeness to the weak one."""
    panel = {}
    for model, mean in means.items():
        if model != strong and mean <= means[strong] - recipe.panel_gap:
            distance = abs(mean - means[weak])
            panel[model] = 1.0 if recipe.panel_tau is None else math.exp(-distance / max(recipe.panel_tau, 1e-6))
    return panel


def _grade(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def with_features(examples: Iterable[Example]) -> list[Example]:
    out = list(examples)
    for example in out:
        example.numeric, example.sparse, example.signals = featurize(Request((Message("user", example.prompt),)))
    return out


# ---------------------------------------------------------------- design matrix


@dataclass
class Design:
    numeric: list[tuple[str, float, float]]  # (name, mean, scale)
    tokens: list[str]
    rows: list[tuple[list[int], list[float]]]  # sparse rows; the last column is the bias
    penalties: list[float]
    centres: list[float]  # the prior each weight is pulled toward


def design(examples: list[Example], recipe: Recipe) -> Design:
    names = sorted({name for ex in examples for name in ex.numeric})
    numeric = []
    for name in names:
        values = [ex.numeric[name] for ex in examples if name in ex.numeric]
        mean = math.fsum(values) / len(values)
        var = math.fsum((v - mean) ** 2 for v in values) / len(values)
        if var > 1e-12:  # a constant column says nothing and would divide by zero
            numeric.append((name, mean, math.sqrt(var)))
    tokens = _vocabulary(examples, recipe)
    index = {token: len(numeric) + i for i, token in enumerate(tokens)}
    bias = len(numeric) + len(tokens)
    rows = []
    for ex in examples:
        cols = list(range(len(numeric)))
        vals = [standardise(ex.numeric.get(name, mean), mean, scale) for name, mean, scale in numeric]
        hits = sorted(index[t] for t in ex.sparse if t in index)
        rows.append((cols + hits + [bias], vals + [1.0] * len(hits) + [1.0]))
    penalties = [recipe.l2_numeric] * len(numeric)
    penalties += [recipe.l2_word if t.startswith("w:") else recipe.l2_category for t in tokens]
    centres = [recipe.prior_for(name) for name, _, _ in numeric] + [recipe.prior_for(t) for t in tokens]
    return Design(numeric, tokens, rows, penalties + [0.0], centres + [0.0])


def _vocabulary(examples: list[Example], recipe: Recipe) -> list[str]:
    df: dict[str, int] = {}
    for ex in examples:
        for token in ex.sparse:
            if token.startswith("w:") and not recipe.words:
                continue
            if recipe.bigrams or " " not in token:
                df[token] = df.get(token, 0) + 1
    # A signal value seen once is kept only if it has a prior, which inference would apply anyway.
    kept = [
        (n, t) for t, n in df.items()
        if (n >= recipe.min_df if t.startswith("w:") else (n >= 2 or recipe.prior_for(t) != 0.0))
    ]
    words = sorted((t for t in kept if t[1].startswith("w:")), key=lambda nt: (-nt[0], nt[1]))[: recipe.max_words]
    cats = [t for t in kept if not t[1].startswith("w:")]
    return sorted(token for _, token in words + cats)


# ---------------------------------------------------------------- the weights


def fit(examples: list[Example], recipe: Recipe, *, strong: str = "", weak: str = "", labels: list[float] | None = None) -> dict[str, Any]:
    """Train on featurized examples; returns the weights as a JSON-ready dict."""
    d = design(examples, recipe)
    ys = labels if labels is not None else [target(ex, recipe) for ex in examples]
    w = lbfgs(d, ys, recipe.iterations)
    numeric = {name: [_r(mean), _r(scale), _r(w[j])] for j, (name, mean, scale) in enumerate(d.numeric)}
    offset = len(d.numeric)
    # Near-zero words are dropped to keep the file small; a signal value with a prior stays,
    # or inference would fall back to its prior instead of what training made of it.
    tokens = {
        t: _r(w[offset + i]) for i, t in enumerate(d.tokens)
        if abs(w[offset + i]) >= 1e-4 or recipe.prior_for(t) != 0.0
    }
    return {
        "format": FORMAT,
        "pair": {"strong": strong, "weak": weak},
        "recipe": recipe.as_dict(),
        "bias": _r(w[-1]),
        "numeric": numeric,
        "tokens": tokens,
        "trained_on": {
            "rows": len(examples),
            "strong_needed": _r(math.fsum(ys) / len(ys)),
            "prompts": sorted(prompt_key(ex.prompt) for ex in examples),
        },
    }


def _r(x: float) -> float:
    value = round(x, 6)
    return 0.0 if value == 0 else value  # no "-0.0" in the file


def prompt_key(prompt: str) -> str:
    """A short fingerprint of a prompt, so eval can tell data the weights were trained on."""
    return hashlib.blake2b(" ".join(prompt.split()).encode("utf-8"), digest_size=6).hexdigest()


def dumps(weights: dict[str, Any]) -> str:
    # One entry a line, keys sorted: a retrained file reads as a small diff.
    return json.dumps(weights, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def train_file(path: Path, strong: str, weak: str, recipe: Recipe | None = None) -> dict[str, Any]:
    """Weights for one pair from a pairs file; the file's name and hash are recorded, not its path."""
    recipe = recipe or Recipe()
    examples = with_features(pair_examples(read_pairs(path), strong, weak, path, recipe))
    weights = fit(examples, recipe, strong=strong, weak=weak)
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    weights["trained_on"].update(data=Path(path).name, data_sha256=digest)
    return weights
