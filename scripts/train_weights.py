"""Reproduce the shipped router weights, byte for byte: routecli/routing/weights/default.json.

    python scripts/train_weights.py            # rewrite the shipped file
    python scripts/train_weights.py --check    # exit 1 if retraining would change it

Data: the shared Arena-Bench-V1 pairs (300 hard Chatbot Arena prompts, 16 models graded by
GPT-4; Apache-2.0, see its SOURCE.txt), read from ../shared, never copied into the repo.
Pair: gpt-4-1106-preview (strong) vs Mixtral-8x7B-Instruct (weak) — the GPT-4 / Mixtral pair
the RouteLLM paper routes between, and the pair in the shared data with the most ties (the
weak model matches the strong one on a third of the prompts), so the one with most to save.
Retrain after changing routing/signals.py or routing/features.py: the weights name signals.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "arena_bench_v1" / "pairs.jsonl"
OUT = ROOT / "routecli" / "routing" / "weights" / "default.json"
STRONG = "gpt-4-1106-preview"
WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--check", action="store_true", help="compare with the shipped file, write nothing")
    args = parser.parse_args()
    from routecli.routing.train import Recipe, dumps, train_file

    if not args.data.exists():
        print(f"no data at {args.data}: check out the shared data beside the repo, or pass --data", file=sys.stderr)
        return 2
    text = dumps(train_file(args.data, STRONG, WEAK, Recipe()))
    if args.check:
        same = OUT.exists() and OUT.read_text(encoding="utf-8") == text
        print(f"{OUT.relative_to(ROOT)} {'matches' if same else 'DIFFERS from'} a fresh training run")
        return 0 if same else 1
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)} ({len(text.encode()):,} bytes) from {args.data.name}: {STRONG} vs {WEAK}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
