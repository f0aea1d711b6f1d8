"""The learned classifier: signals + text shape -> logistic score, with the features that moved it.

Inference is a sparse dot product and a sigmoid in pure Python. The weights file ships in
the package (routing/weights/default.json, made by scripts/train_weights.py); ROUTECLI_WEIGHTS
points at another one (from `routecli train`), read when routecli starts. The file is parsed
once, on first use. VERSION names the file's content, so every decision records which
weights made it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from routecli.domain import Request
from routecli.errors import UsageError
from routecli.routing.features import (
    Z_LIMIT,
    category_tokens,
    describe,
    featurize_for,
    numeric_value,
    prior_weight,
    text_features,
    text_stats,
)
from routecli.routing.signals import Known, extract_signals

NAME = "learned"
Part = tuple[str, float, bool]  # (feature, logit change, value above the training mean)
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "default.json"
REASONS = 3  # features named in a decision; more reads as noise
_MIN_REASON = 0.05  # a logit change smaller than this explains nothing


def weights_path() -> Path:
    override = os.environ.get("ROUTECLI_WEIGHTS")
    return Path(override).expanduser() if override else DEFAULT_WEIGHTS


def version_of(path: Path) -> str:
    try:
        return "learned-" + hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    except OSError:
        return "learned-missing"


class Model:
    """Weights ready for scoring: numeric features standardised, word/category tokens sparse."""

    def __init__(self, weights: dict[str, Any]) -> None:
        self.weights = weights
        self.bias = float(weights["bias"])
        self.numeric = [
            (name, float(mean), float(scale) or 1.0, float(w))
            for name, (mean, scale, w) in sorted(weights["numeric"].items())
            if w
        ]
        self.tokens: dict[str, float] = {k: float(v) for k, v in weights["tokens"].items()}
        self.prior: dict[str, float] = dict(weights.get("recipe", {}).get("prior", {}))
        self.vocab_firsts = {k[2:].split(" ", 1)[0] for k in self.tokens if k.startswith("w:") and " " in k}
        self.words = any(k.startswith("w:") for k in self.tokens)
        # the string signals this model weighs (a value it never saw still has the prior's "name=*"), and
        # each value's weighed tokens: a signal takes few values, which recur from prompt to prompt
        self.categories = sorted({key.partition("=")[0] for key in (*self.tokens, *self.prior) if "=" in key})
        # the numeric features that signals give (the others are text statistics)
        stats = set(text_stats("", "", [], {}))
        self.signal_numeric = [name for name, *_ in self.numeric if name not in stats]
        self._category_weights = Known(lambda token: self.weigh(category_tokens(*token.split("=", 1))))

    def contributions(self, request: Request) -> tuple[float, list[Part], dict[str, Any]]:
        """(logit, [(feature, logit change)], signals); changes are against an average prompt."""
        if self.words:
            numeric, sparse, signals = featurize_for(request, self.tokens, self.vocab_firsts)
            return (*self.logit(numeric, self.weigh(sparse)), signals)
        # featurize_for's features, only those this model weighs: the classifier runs on every request
        signals = extract_signals(request)
        numeric = text_features(request)[0]
        for name in self.signal_numeric:
            value = signals.get(name)
            kind = value.__class__
            if kind is int or kind is float:  # numeric_value, inline for the usual kinds: it runs ~15 times a request
                if math.isfinite(value):
                    numeric[name] = math.log1p(value) if value >= 0 else -math.log1p(-value)
            elif (number := numeric_value(value)) is not None:
                numeric[name] = number
        weighed: list[tuple[str, float]] = []
        for name in self.categories:
            if isinstance(value := signals.get(name), str) and value:
                weighed += self._category_weights[f"{name}={value}"]
        return (*self.logit(numeric, sorted(weighed)), signals)

    def weigh(self, sparse: Iterable[str]) -> list[tuple[str, float]]:
        """(token, weight) of every distinct sparse token with a weight, in a fixed order: the same sum,
        to the last bit, in every process."""
        weighed = []
        for token in sorted(set(sparse)):
            w = self.tokens.get(token)
            if w is None and "=" in token:
                w = prior_weight(self.prior, token)  # a signal value training never saw
            if w:
                weighed.append((token, w))
        return weighed

    def logit(self, numeric: dict[str, float], weighed: list[tuple[str, float]]) -> tuple[float, list[Part]]:
        """Bias plus every feature's change; a numeric change is measured from the training mean."""
        logit = self.bias
        parts: list[Part] = []
        for name, mean, scale, w in self.numeric:
            value = numeric.get(name)
            if value is not None:
                z = (value - mean) / scale  # features.standardise, inline: as train.py does, one formula for both
                change = w * (Z_LIMIT if z > Z_LIMIT else -Z_LIMIT if z < -Z_LIMIT else z)
                logit += change
                parts.append((name, change, value > mean))
        for token, w in weighed:
            logit += w
            parts.append((token, w, True))
        return logit, parts

    def score_features(self, example: Any) -> float:
        """Score already featurized text (an Example from training): for cross-validation."""
        logit, _ = self.logit(example.numeric, self.weigh(example.sparse))
        return _sigmoid(logit)

    def score(self, request: Request) -> tuple[float, tuple[str, ...], dict[str, Any]]:
        logit, parts, signals = self.contributions(request)
        return _sigmoid(logit), self.reasons(parts, signals), signals

    def reasons(self, parts: list[Part], signals: dict[str, Any]) -> tuple[str, ...]:
        """The few features that moved the score most, signed, e.g. "code (python) +0.42"."""
        # ties by name: same prompt, same words; the many small changes are left out before sorting.
        # Sorted as (-|change|, name, place) tuples: no key function called per part, ties kept in order
        ranked = sorted([(-size, key, i) for i, (key, change, _) in enumerate(parts)
                         if (size := abs(change)) >= _MIN_REASON])
        out: list[str] = []
        for _, key, i in ranked:
            if len(out) == REASONS:
                break
            change, above = parts[i][1], parts[i][2]
            text = describe(key, signals.get(key), above)
            for reason in out:
                if reason.startswith(text):  # chars and est_tokens read alike
                    break
            else:
                out.append(f"{text} {'+' if change > 0 else '-'}{abs(change):.2f}")
        return tuple(out) or ("nothing stood out",)


def _sigmoid(logit: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, logit))))


@lru_cache(maxsize=4)
def _load(path: str) -> Model:
    try:
        weights = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"No router weights at {path}: run `routecli train` or unset ROUTECLI_WEIGHTS") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"Router weights {path} are unreadable ({exc}); retrain them with `routecli train`") from None
    return model_from(weights, path)


def model_from(weights: Any, source: str = "weights") -> Model:
    if not isinstance(weights, dict) or weights.get("format") != "routecli-learned-1":
        raise UsageError(f"{source} is not a routecli weights file; make one with `routecli train`")
    try:
        return Model(weights)
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{source} is damaged ({exc!r}); retrain it with `routecli train`") from None


# Fixed at import, so the version recorded with a decision always names the file that made it.
WEIGHTS = weights_path()
VERSION = version_of(WEIGHTS)


def load(path: Path | None = None) -> Model:
    return _load(str(path or WEIGHTS))


def score_request(request: Request) -> tuple[float, tuple[str, ...], dict[str, Any]]:
    return load().score(request)
