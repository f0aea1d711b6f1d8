"""Latency `routecli serve` adds over calling the upstream directly, measured side by side.

    python benchmarks/serve_overhead.py [--latency 0.02] [--requests 400] [--levels 1,64]

The upstream is tests/fakevendor.py with a fixed latency per answer. For each concurrency level,
the same client (httpx, keep-alive) sends the same OpenAI chat requests once straight to the
fake vendor and once through `routecli serve` (model "auto": the classifier, the guards and the
ledger all run), and the script prints p50/p99 of each and their difference: the overhead.
Directly and through serve alternate in rounds so both see the same machine load.
Target (issue 8): p50 overhead under 2 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
KEY = "bench-key-0123456789"


def start_serve(vendor_root: str, home: Path) -> tuple[subprocess.Popen, str]:
    (home / "config.toml").write_text(
        f'[providers.openai]\nbase_url = "{vendor_root}/v1"\npricing_provider = "openai"\n'
        '[routing]\ntier_order = ["cheap"]\n[tiers.cheap]\nmodels = ["openai:gpt-5.4-nano"]\n'
        "[escalation]\nenabled = false\n")
    env = {**os.environ, "ROUTECLI_HOME": str(home), "OPENAI_API_KEY": KEY}
    process = subprocess.Popen([sys.executable, "-m", "routecli", "serve", "--port", "0"], env=env,
                               stderr=subprocess.PIPE, text=True, cwd=ROOT)
    line = process.stderr.readline()
    if "listening on" not in line:
        raise SystemExit(f"serve did not start: {line}{process.stderr.read()}")
    return process, line.split("listening on ", 1)[1].split()[0]


async def measure(url: str, headers: dict, body: dict, requests: int, concurrency: int) -> list[float]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    times: list[float] = []
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        async def worker(count: int) -> None:
            for i in range(count):
                started = time.perf_counter()
                payload = {**body, "messages": [{"role": "user", "content": f"question {i} please"}]}
                response = await client.post(url, json=payload, headers=headers)
                response.raise_for_status()
                times.append((time.perf_counter() - started) * 1000)

        per = max(1, requests // concurrency)
        await asyncio.gather(*(worker(per) for _ in range(concurrency)))
    return times


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--levels", default="1,64")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import fakevendor

    root, vendor = fakevendor.start_server(key=KEY, latency=args.latency)
    with tempfile.TemporaryDirectory() as tmp:
        serve, url = start_serve(root, Path(tmp))
        try:
            print(f"serve overhead: fake vendor with {args.latency * 1000:.0f} ms latency, {os.cpu_count()} CPUs, "
                  f"{args.requests} requests x {args.rounds} rounds per level")
            for level in (int(x) for x in args.levels.split(",")):
                direct: list[float] = []
                routed: list[float] = []
                for _ in range(args.rounds):
                    direct += asyncio.run(measure(root + "/v1/chat/completions", {"authorization": f"Bearer {KEY}"},
                                                  {"model": "gpt-5.4-nano"}, args.requests, level))
                    routed += asyncio.run(measure(url + "/v1/chat/completions", {}, {"model": "auto"},
                                                  args.requests, level))
                d50, d99, r50, r99 = pct(direct, .5), pct(direct, .99), pct(routed, .5), pct(routed, .99)
                print(f"  concurrency {level:>3}: direct p50 {d50:7.2f} ms p99 {d99:7.2f} | via serve p50 {r50:7.2f} ms "
                      f"p99 {r99:7.2f} | overhead p50 {r50 - d50:+.2f} ms p99 {r99 - d99:+.2f} ms "
                      f"(mean {statistics.mean(routed) - statistics.mean(direct):+.2f} ms)", flush=True)
        finally:
            serve.terminate()
            serve.wait(timeout=10)
            fakevendor.stop_server(vendor)


if __name__ == "__main__":
    main()
