"""False-hit risk of the similarity cache on real prompts: how many pairs of *distinct* prompts in
../shared/data/arena_bench_v1 would share an answer at each threshold (the default included).

    python benchmarks/similar_cache_risk.py [--data PATH/pairs.jsonl]

Every pair of distinct prompts is compared with `guard.similar.similarity` (numbers must match,
then Jaccard of character 3-grams). Also shown: that the MinHash bands find every pair above the
threshold (recall of the candidate search), and how fast a similarity check is.
Target (issue 9): no distinct prompts share an answer at the default threshold.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "arena_bench_v1" / "pairs.jsonl"


def main() -> None:
    from routecli.config_guards import CacheConfig
    from routecli.guard.similar import bands, normalise, numbers, shingles, similarity

    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    prompts = sorted({json.loads(line)["prompt"] for line in args.data.read_text().splitlines() if line.strip()})
    default = CacheConfig().similarity
    started = time.perf_counter()
    scored = [(similarity(a, b), a, b) for a, b in itertools.combinations(prompts, 2)]
    per_pair = (time.perf_counter() - started) / len(scored) * 1e6
    print(f"similarity cache false-hit risk: {len(prompts)} distinct prompts, {len(scored):,} pairs, "
          f"{per_pair:.0f} µs per comparison")
    for threshold in sorted({0.7, 0.8, 0.9, default, 0.98}):
        hits = [s for s in scored if s[0] >= threshold]
        mark = "  <- default" if threshold == default else ""
        print(f"  threshold {threshold:.2f}: {len(hits)} pairs of distinct prompts would share an answer{mark}")
    closest = max(scored)
    print(f"  closest distinct pair: {closest[0]:.3f}\n    {closest[1][:90]!r}\n    {closest[2][:90]!r}")
    signatures = {p: set(bands(shingles(normalise(p)))) for p in prompts}
    near = [s for s in scored if s[0] >= 0.7]
    found = sum(1 for _, a, b in near if signatures[a] & signatures[b])
    print(f"  MinHash candidate recall on pairs >= 0.70: {found}/{len(near)}")
    variants = [(p, p.rstrip("?.! ") + " ?") for p in prompts[:50]] + [(p, p.upper()) for p in prompts[50:100]]
    same = sum(1 for a, b in variants if similarity(a, b) >= default)
    print(f"  same prompt, other case/punctuation/spacing: {same}/{len(variants)} would be answered from the cache")
    # one word dropped from prompts long enough that the rest stays near-identical
    edited = [(p, " ".join(p.split()[:5] + p.split()[6:])) for p in prompts if len(p) > 400]
    close = [(a, b) for a, b in edited if similarity(a, b) >= default]
    caught = sum(1 for a, b in close if set(bands(shingles(normalise(a)))) & set(bands(shingles(normalise(b)))))
    print(f"  long prompt minus one word: {len(close)}/{len(edited)} reach the default threshold; "
          f"MinHash bands find {caught}/{len(close)} of those")
    changed = [(p, p + " 7") for p in prompts[:100]]
    print(f"  same prompt with a number added: {sum(similarity(a, b) > 0 for a, b in changed)}/100 similar")
    negated = [(p, p.replace(" is ", " is not ", 1)) for p in prompts if " is " in p][:100]
    print(f"  same prompt with 'is' made 'is not': {sum(similarity(a, b) > 0 for a, b in negated)}/{len(negated)} "
          "similar")
    _ = numbers


if __name__ == "__main__":
    main()
