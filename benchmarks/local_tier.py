"""The local tier measured: load time, tokens/s, easy questions answered right, and what it saves.

    python benchmarks/local_tier.py [--model ID_OR_PATH] [--threads N] [--runs 3] [--json]

Needs `pip install -e ".[local]"`. Each run is a fresh process (load time is a cold process's),
which loads the model and answers every sample_prompts/easy.jsonl question greedily through the
llamacpp provider, with the answers graded by the key below. Printed: load time (median of runs),
generation tokens/s (median over all answers, time to first token left out), how many answers
were right, which of those questions the default classifier sends to the local tier, and what
those same tokens would cost on the first model of each remote tier, per 1,000 such prompts.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EASY = ROOT / "sample_prompts" / "easy.jsonl"
_SYNONYMS = ("joyful", "cheerful", "content", "glad", "delighted", "elated", "pleased", "ecstatic", "jubilant",
             "merry", "joyous", "thrilled", "upbeat", "blissful", "overjoyed", "chipper", "jolly", "buoyant",
             "gleeful", "carefree", "satisfied", "lighthearted", "euphoric", "sunny")
# id -> does this answer get it right? Strict where a person would be: three synonyms means three.
KEY = {
    "easy-1": lambda a: bool(re.search(r"\bparis\b", a)),
    "easy-2": lambda a: bool(re.search(r"buen[oa]s d[ií]as", a) and re.search(r"c[oó]mo est[aá]s", a)),
    "easy-3": lambda a: "the quick brown fox jumps over the lazy dog" in a,
    "easy-4": lambda a: sum(bool(re.search(rf"\b{word}\b", a)) for word in _SYNONYMS) >= 3,
    "easy-5": lambda a: bool(re.search(r"\b22(\.2\d*)?\s*(°|degrees)?\s*c", a)),
    "easy-6": lambda a: "austen" in a,
}


def child(model: str, threads: int | None) -> None:
    """One cold process: load, answer each easy question, one JSON line of figures on stdout."""
    from routecli.config import ProviderConfig
    from routecli.domain import Message, Request
    from routecli.providers import llamacpp

    started = time.perf_counter()
    llamacpp.model_file(model)  # joins the packaged chunks on a first run: not part of the load
    joined = time.perf_counter() - started
    loaded = llamacpp.load(model, context_size=4096, threads=threads)
    cfg = ProviderConfig("local", "llamacpp", "", None, threads=threads)
    provider = llamacpp.LlamaCppProvider(cfg, llamacpp.Runtime(cfg), default_max_tokens=256)
    answers = []
    for line in EASY.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        reply = provider.complete(Request(messages=(Message("user", item["prompt"]),)), model, stream=True)
        generating = (reply.latency_ms - (reply.ttft_ms or 0)) / 1000
        answers.append({"id": item["id"], "prompt": item["prompt"], "answer": reply.text,
                        "input_tokens": reply.usage.input_tokens, "output_tokens": reply.usage.output_tokens,
                        "tok_s": (reply.usage.output_tokens - 1) / generating if generating > 0 else None})
    print(json.dumps({"join_s": joined, "load_s": loaded.load_ms / 1000, "answers": answers}))


def routed_local(prompts: list[str]) -> list[bool]:
    """Whether the default config's classifier puts each prompt in the local tier."""
    from routecli.config import load_config
    from routecli.domain import Message, Request
    from routecli.routing import classify

    config = load_config()
    return [classify(Request(messages=(Message("user", p),)), config).tier == "local" for p in prompts]


def remote_prices(answers: list[dict]) -> dict[str, tuple[str, float | None]]:
    """USD per 1,000 such prompts on the first model of each remote tier (same token counts)."""
    from routecli.config import load_config
    from routecli.domain import Usage
    from routecli.pricing import price

    config = load_config()
    out = {}
    for tier in config.tier_order:
        ref = config.tiers[tier][0]
        if config.provider(ref.provider).kind == "llamacpp":
            continue
        costs = [price(Usage(a["input_tokens"], a["output_tokens"]), ref, config).cost for a in answers]
        known = None if any(c is None for c in costs) else float(sum(costs)) / len(costs) * 1000
        out[tier] = (str(ref), known)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a packaged model id or a .gguf path")
    parser.add_argument("--threads", type=int, default=None, help="default: llama-cpp-python's choice")
    parser.add_argument("--runs", type=int, default=3, help="cold processes (default 3)")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of text")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    from routecli.providers.llamacpp import DEFAULT_MODEL

    model = args.model or DEFAULT_MODEL
    if args.child:
        child(model, args.threads)
        return
    os.environ["ROUTECLI_HOME"] = tempfile.mkdtemp()  # the built-in defaults, not the user's config
    runs = [_run_child(model, args.threads) for _ in range(args.runs)]
    report(model, runs, as_json=args.json)


def _run_child(model: str, threads: int | None) -> dict:
    argv = [sys.executable, __file__, "--child", "--model", model] + (["--threads", str(threads)] if threads else [])
    done = subprocess.run(argv, check=False, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"the benchmark's child process failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(model: str, runs: list[dict], *, as_json: bool) -> None:
    answers = runs[0]["answers"]  # greedy decoding: every run gives the same answers
    right = [KEY[a["id"]](a["answer"].lower()) for a in answers]
    local = routed_local([a["prompt"] for a in answers])
    rates = [a["tok_s"] for run in runs for a in run["answers"] if a["tok_s"]]
    figures = {
        "model": model, "runs": len(runs), "load_s_median": statistics.median(r["load_s"] for r in runs),
        "first_join_s": max(r["join_s"] for r in runs), "tokens_per_s_median": statistics.median(rates),
        "easy_right": sum(right), "easy_total": len(right), "easy_routed_local": sum(local),
        "remote_usd_per_1000": remote_prices(answers),
        "answers": [dict(a, right=r, routed_local=loc) for a, r, loc in zip(answers, right, local)],
    }
    if as_json:
        print(json.dumps(figures, indent=2))
        return
    print(f"model {model}: load {figures['load_s_median']:.2f} s (median of {len(runs)} cold processes), "
          f"{figures['tokens_per_s_median']:.1f} tokens/s generating (median of {len(rates)} answers)")
    print(f"easy questions answered right: {sum(right)} of {len(right)}; "
          f"routed to the local tier by default: {sum(local)} of {len(local)}")
    for a, r, loc in zip(answers, right, local):
        answer = " ".join(a["answer"].split())
        print(f"  {'right' if r else 'WRONG'} {'local' if loc else 'other'} {a['id']}: "
              f"{answer[:90]}{'…' if len(answer) > 90 else ''}")
    tokens = sum(a["input_tokens"] for a in answers), sum(a["output_tokens"] for a in answers)
    print(f"the same {tokens[0]} prompt + {tokens[1]} answer tokens, per 1,000 such prompts: local $0")
    for tier, (ref, usd) in figures["remote_usd_per_1000"].items():
        print(f"  {tier:<9} {ref:<36} {'unknown' if usd is None else f'${usd:.4f}'}")


if __name__ == "__main__":
    main()
