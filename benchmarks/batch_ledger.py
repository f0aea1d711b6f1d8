"""What the ledger's database does to `routecli batch`: SQLite, PostgreSQL on this machine, and
PostgreSQL across a network (team mode), side by side.

    python benchmarks/batch_ledger.py [--lines 400] [--delay 0.1] [--concurrency 16] [--rtt-ms 2]

The same file of lines (sample_prompts/'s text prompts, routed over three tiers at the fake vendor,
each answer --delay seconds away) goes through `routecli batch` once per ledger, with and without a
daily budget (every line then holds its worst case before its call and frees it after its row is
committed). The PostgreSQL server and the proxy that puts it --rtt-ms away are serve_ledger.py's.
The script prints each run's wall time and lines a second; with --concurrency 16 and 0.1 s answers,
400 lines cannot take less than 2.5 s, plus routecli's start.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serve_ledger  # noqa: E402  (puts tests/ and the project on the path)
from serve_overhead import KEY, PROMPTS, ROOT  # noqa: E402

CONFIG = ('[providers.openai]\nbase_url = "{root}/v1"\npricing_provider = "openai"\n'
          '[routing]\ntier_order = ["cheap", "standard", "premium"]\n[tiers.cheap]\nmodels = ["openai:gpt-5.4-nano"]\n'
          '[tiers.standard]\nmodels = ["openai:gpt-5.4-mini"]\n[tiers.premium]\nmodels = ["openai:gpt-5.5"]\n'
          "[escalation]\nenabled = false\n")


def run_batch(home: Path, lines: Path, db: str, concurrency: int) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "ROUTECLI_HOME": str(home), "OPENAI_API_KEY": KEY, "ROUTECLI_DB": db}
    migrated = subprocess.run([sys.executable, "-m", "routecli", "db", "migrate"], env=env, cwd=ROOT,
                              capture_output=True, text=True)
    if migrated.returncode != 0:
        raise SystemExit(f"routecli db migrate failed: {migrated.stderr}")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "routecli", "batch", str(lines), "-o", str(home / "out.jsonl"),
                           "-c", str(concurrency)], env=env, cwd=ROOT, capture_output=True, text=True)
    return time.perf_counter() - started, done


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=400)
    parser.add_argument("--delay", type=float, default=0.1, help="seconds before each answer")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rtt-ms", type=float, default=2.0, help="round trip to the far PostgreSQL")
    args = parser.parse_args()
    import fakevendor

    root, vendor = fakevendor.start_server(key=KEY)
    print(f"batch: {args.lines} lines, {args.concurrency} at a time, answers {args.delay * 1000:.0f} ms away")
    try:
        with serve_ledger.postgres(args.rtt_ms) as (pg, proxy_port), tempfile.TemporaryDirectory() as tmp:
            lines = Path(tmp) / "lines.jsonl"
            lines.write_text("".join(json.dumps({"id": f"line-{n}", "prompt": f"{PROMPTS[n % len(PROMPTS)]} "
                                                 f"[[delay={args.delay}]]"}) + "\n" for n in range(args.lines)))
            for name, new_ledger in serve_ledger.ledgers(pg, args.rtt_ms, proxy_port):
                for budget in ("off", "on"):
                    home = Path(tmp) / f"{name}-{budget}".replace(" ", "-")
                    home.mkdir()
                    (home / "config.toml").write_text(CONFIG.format(root=root) +
                                                      (serve_ledger.BUDGET if budget == "on" else ""))
                    took, done = run_batch(home, lines, new_ledger(home), args.concurrency)
                    answered = sum(1 for line in (home / "out.jsonl").read_text().splitlines()
                                   if json.loads(line).get("status") == "ok") if done.returncode == 0 else 0
                    print(f"  {name + ', budget ' + budget:<36} {took:6.2f} s, {args.lines / took:5.0f} lines a "
                          f"second, {answered} answered" + (f" (exit {done.returncode}: {done.stderr.strip()[-200:]})"
                                                             if done.returncode else ""), flush=True)
    finally:
        fakevendor.stop_server(vendor)


if __name__ == "__main__":
    os.environ.pop("ROUTECLI_DB", None)
    main()
