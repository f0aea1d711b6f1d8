"""A/B tests of routing strategies: the strategy syntax, and which variant a request falls in.

Pure (no I/O, no clock), so `Engine.decide` can call it on every request. The tests' rows
live in `ab_store.py`, the statistics of a test in `ab_report.py`.

A strategy is a classifier plus, optionally, its thresholds:

    rules                               the rules classifier, the config's thresholds
    learned@0.5                         two-way: score >= 0.5 goes to the strongest tier, the rest to the cheapest
    learned:standard=0.45,premium=0.54  the config's thresholds with these tiers' replaced
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Sequence

from routecli.errors import UsageError

if TYPE_CHECKING:
    from routecli.config import Config
    from routecli.domain import Request

BY_KEYS = ("prompt", "agent", "tag")  # what a request's variant is a hash of
MAX_VARIANTS = 4
STRATEGY_FORMS = "CLASSIFIER, CLASSIFIER@SCORE or CLASSIFIER:TIER=SCORE,... (e.g. rules, learned@0.5, " \
                 "learned:standard=0.45,premium=0.54)"
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_STRATEGY = re.compile(r"^(?P<classifier>[A-Za-z_][A-Za-z0-9_-]*)(?:@(?P<cut>[^:]+)|:(?P<thresholds>.+))?$")


@dataclass(frozen=True, slots=True)
class Strategy:
    text: str  # as written: what the ledger and the report show
    classifier: str
    cut: float | None = None  # CLASSIFIER@SCORE
    thresholds: tuple[tuple[str, float], ...] = ()  # CLASSIFIER:TIER=SCORE,...

    def apply(self, config: Config) -> Config:
        """The config this strategy routes with: its classifier and thresholds over the config's.

        Tiers the config no longer has are ignored, and every tier keeps a threshold, so a
        test started before a config change still routes (never a KeyError mid-request)."""
        thresholds = dict(config.thresholds)
        if self.cut is not None:
            thresholds = {tier: self.cut for tier in config.tier_order[1:]}
        thresholds.update((tier, score) for tier, score in self.thresholds if tier in config.tier_order)
        return replace(config, classifier=self.classifier, thresholds=thresholds)

    def check(self, config: Config) -> None:
        """Refuse thresholds for tiers the config lacks, or that would skip a tier by going down."""
        upper = config.tier_order[1:]
        for tier, _ in self.thresholds:
            if tier not in upper:
                raise _bad(self.text, f"{tier!r} is not a tier above the cheapest; use one of: {', '.join(upper)}")
        if self.cut is None and self.thresholds:
            merged = self.apply(config).thresholds
            scores = [merged[tier] for tier in upper]
            if scores != sorted(scores):
                pairs = ", ".join(f"{tier}={merged[tier]:g}" for tier in upper)
                raise _bad(self.text, f"thresholds must rise with the tier order, got {pairs}")


@dataclass(frozen=True, slots=True)
class ABTest:
    name: str
    variants: tuple[tuple[str, Strategy], ...]  # (variant name, strategy), in the order given
    split: tuple[int, ...]  # percent per variant, summing to 100
    by: str  # one of BY_KEYS
    status: str = "running"  # running | stopped


def _bad(text: str, why: str) -> UsageError:
    return UsageError(f"Bad strategy {text!r}: {why}; write {STRATEGY_FORMS}")


def _score(text: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise _bad(text, f"{raw!r} is not a score") from None
    if not 0.0 <= value <= 1.0:
        raise _bad(text, f"score {raw} is outside 0..1")
    return value


def parse_strategy(text: str, classifiers: Sequence[str] | None = None) -> Strategy:
    """A strategy from its compact text; every complaint is one line that names the forms."""
    if classifiers is None:
        from routecli.routing import CLASSIFIERS

        classifiers = tuple(CLASSIFIERS)
    text = text.strip()
    match = _STRATEGY.match(text.replace(" ", ""))
    if not match:
        raise _bad(text, "cannot read it")
    classifier = match["classifier"]
    if classifier not in classifiers:
        raise _bad(text, f"unknown classifier {classifier!r} (known: {', '.join(sorted(classifiers))})")
    if match["cut"] is not None:
        return Strategy(text, classifier, cut=_score(text, match["cut"]))
    pairs: list[tuple[str, float]] = []
    for part in match["thresholds"].split(",") if match["thresholds"] else ():
        tier, sep, raw = part.partition("=")
        if not sep or not tier:
            raise _bad(text, f"{part!r} is not TIER=SCORE")
        if tier in dict(pairs):
            raise _bad(text, f"tier {tier!r} is given twice")
        pairs.append((tier, _score(text, raw)))
    return Strategy(text, classifier, thresholds=tuple(pairs))


def router_strategy(text: str) -> Strategy:
    """A per-request router, as RouteLLM clients name them: `learned:0.5` (--router) or
    `router-learned-0.5` (a model name); the threshold is CLASSIFIER@SCORE's two-way cut."""
    raw = text.strip()
    if raw.startswith("router-"):
        body = raw[len("router-"):]
        name, _, cut = body.rpartition("-")
        if not name or not re.fullmatch(r"[0-9.]+", cut):
            name, cut = body, ""
    else:
        name, _, cut = raw.partition(":")
    try:
        return parse_strategy(f"{name}@{cut}" if cut else name)
    except UsageError:
        from routecli.routing import CLASSIFIERS

        raise UsageError(f"Unknown router {text!r}: use NAME or NAME:THRESHOLD (or model router-NAME-THRESHOLD) "
                         f"with NAME one of {', '.join(sorted(CLASSIFIERS))} and THRESHOLD in 0..1") from None


def parse_variant(text: str) -> tuple[str, Strategy]:
    """`NAME=STRATEGY`, as `--variant` takes it."""
    name, sep, strategy = text.partition("=")
    name = name.strip()
    if not sep or not _NAME.match(name):
        raise UsageError(
            f"Bad --variant {text!r}: write NAME=STRATEGY, e.g. --variant a=rules --variant b=learned@0.5 "
            "(names: letters, digits, _ . -)"
        )
    return name, parse_strategy(strategy)


def parse_split(text: str | None, count: int) -> tuple[int, ...]:
    """`50/50`, `70/30`, `34/33/33`: whole percents, one per variant, summing to 100; None: even."""
    if text is None:
        base, extra = divmod(100, count)
        return tuple(base + (1 if index < extra else 0) for index in range(count))
    parts = text.replace(":", "/").split("/")
    example = "/".join([str(100 // count)] * (count - 1) + [str(100 - 100 // count * (count - 1))])
    try:
        split = tuple(int(part) for part in parts)
    except ValueError:
        split = ()
    if len(split) != count or sum(split) != 100 or min(split) <= 0:
        raise UsageError(
            f"Bad --split {text!r}: give {count} whole percents above 0 that sum to 100, e.g. --split {example}"
        )
    return split


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise UsageError(f"Bad A/B test name {name!r}: use letters, digits, _ . - (up to 64), e.g. cheap-vs-learned")
    return name


def assignment_key(request: Request, by: str) -> str | None:
    """What the variant is a hash of; None: this request has no such key and is not in the test."""
    if by == "agent":
        return request.agent or None
    if by == "tag":
        return request.tags[0] if request.tags else None
    return hashlib.sha256(request.last_user_text.encode("utf-8", "surrogatepass")).hexdigest()


def bucket(test_name: str, key: str) -> int:
    """0..9999, stable across processes and versions; salted by the test, so two tests split independently."""
    digest = hashlib.sha256(f"{test_name}\x00{key}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % 10_000


def assign(request: Request, tests: Sequence[ABTest]) -> tuple[str, str, Strategy] | None:
    """(test, variant, strategy) for this request, or None.

    A request whose tier or model is forced is in no test: no strategy routed it. Only one
    test runs at a time (`ab start` refuses a second), but should there be more, the first
    that has a key for the request takes it."""
    if request.tier or request.model:
        return None
    for test in tests:
        if test.status != "running":
            continue
        key = assignment_key(request, test.by)
        if key is None:
            continue
        point, edge = bucket(test.name, key), 0
        for (variant, strategy), share in zip(test.variants, test.split, strict=True):
            edge += share * 100
            if point < edge:
                return test.name, variant, strategy
    return None


def arm(request: Request, tests: Sequence[ABTest], config: Config) -> tuple[tuple[str, str], Config] | None:
    """What `Engine.decide` needs: ((test, variant), the config to classify with), or None."""
    if not tests:
        return None
    found = assign(request, tests)
    if found is None:
        return None
    name, variant, strategy = found
    return (name, variant), strategy.apply(config)
