"""Latency `routecli serve` adds over calling the upstream directly, measured side by side.

    python benchmarks/serve_overhead.py [--requests 400] [--levels 1:0.02,64:0.5]

The upstream is tests/fakevendor.py with a fixed latency per answer (per level: the fake vendor
is a Python thread server on the same 2 cores, so at 64 clients its latency must leave it
enough requests per second to keep up, or the figures measure its queue, not routecli). For each concurrency level,
the same client (httpx, keep-alive) sends the same OpenAI chat requests once straight to the
fake vendor and once through `routecli serve` (model "auto": the classifier, the guards and the
ledger all run), and the script prints p50/p99 of each and the overhead two ways: the difference of the two
paths' percentiles, and the percentiles of the request-by-request differences (each client asks
for the same upstream delays on both paths, so request i of client c is the same work either way;
with +-20% jitter on the delay, this pairing removes the spread the jitter adds to the first).
Each client's first request (connection set-up, and at 64 clients one burst of all of them) is a
warm-up on both paths and left out. Directly and through serve alternate in rounds so both see
the same machine load. Target (issue 8): p50 overhead under 2 ms.

Each round also sends the same requests through benchmarks/minimal_relay.py, a relay that only
forwards (asyncio and h11, as serve uses; no routing, no ledger), pinned like serve: the
overhead any Python relay has on this machine, measured beside serve's. On the 2-CPU test VM
code that runs after its CPU sat idle for a few milliseconds runs several times slower than
back to back, and each request wakes the relay twice (the request, then the upstream's answer),
so this floor is not small there.

Two layouts. "own-core": serve alone on one CPU, the load generator and the fake upstream on
the rest, as in a deployment where the endpoint does not share its core with the programs
calling it. "shared": all three processes on every CPU; on a 2-CPU machine the client and the
upstream then preempt serve mid-request, and that contention is in the figure too.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
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
    return _listening(subprocess.Popen([sys.executable, "-m", "routecli", "serve", "--port", "0"], env=env,
                                       stderr=subprocess.PIPE, text=True, cwd=ROOT))


def start_minimal_relay(vendor_root: str) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    return _listening(subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "minimal_relay.py"), vendor_root],
                                       env=env, stderr=subprocess.PIPE, text=True, cwd=ROOT))


def _listening(process: subprocess.Popen) -> tuple[subprocess.Popen, str]:
    line = process.stderr.readline()
    if "listening on" not in line:
        process.kill()
        raise SystemExit(f"{process.args[1]} did not start: {line}{process.stderr.read()}")
    return process, line.split("listening on ", 1)[1].split()[0]


async def measure(url: str, headers: dict, body: dict, requests: int, concurrency: int,
                  delay: float, jitter: float) -> dict[tuple[int, int], float]:
    """Milliseconds per request, keyed by (client, request number): the same key asks the
    upstream for the same latency on both paths, so the two runs can be compared request by request."""
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    times: dict[tuple[int, int], float] = {}
    # The load generator's own collector pauses (one full collection stalled every request in
    # flight by ~200 ms, whichever path was being measured) are not serve's overhead.
    gc.collect()
    gc.disable()
    try:
        await _run_clients(url, headers, body, requests, concurrency, delay, jitter, limits, times)
    finally:
        gc.enable()
    return times


async def _run_clients(url: str, headers: dict, body: dict, requests: int, concurrency: int, delay: float,
                       jitter: float, limits: object, times: dict[tuple[int, int], float]) -> None:
    import httpx

    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        async def worker(count: int, seed: int) -> None:
            rng = random.Random(seed)  # the same latencies for the direct and the routed run
            for i in range(count):
                started = time.perf_counter()
                wait = delay * (1 + rng.uniform(-jitter, jitter))
                text = f"question {i} please [[delay={wait:.4f}]]"
                payload = {**body, "messages": [{"role": "user", "content": text}]}
                response = await client.post(url, json=payload, headers=headers)
                response.raise_for_status()
                times[seed, i] = (time.perf_counter() - started) * 1000

        per = max(1, requests // concurrency)
        await asyncio.gather(*(worker(per, seed) for seed in range(concurrency)))


def pin(pid: int, cpus: set[int]) -> None:
    """Move every thread of a process (a thread started later inherits its creator's CPUs)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), cpus)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(level: int, latency: float, direct: dict, routed: dict, cpu_ms: float) -> None:
    # Each client's first request opens its connection and, at 64 clients, lands in one burst
    # with all the others: a warm-up on both paths, left out of the figures.
    keys = [key for key in direct if key in routed and key[2] > 0]
    d = [direct[key] for key in keys]
    r = [routed[key] for key in keys]
    paired = [routed[key] - direct[key] for key in keys]
    print(f"  concurrency {level:>3}, upstream {latency * 1000:.0f} ms, {len(keys)} requests: "
          f"direct p50 {pct(d, .5):.2f} p99 {pct(d, .99):.2f} ms | via serve p50 {pct(r, .5):.2f} p99 {pct(r, .99):.2f} ms")
    print(f"      overhead: difference of p50s {pct(r, .5) - pct(d, .5):+.2f} ms, of p99s {pct(r, .99) - pct(d, .99):+.2f} ms; "
          f"request by request (same client, same upstream delay) p50 {pct(paired, .5):+.2f} ms "
          f"p99 {pct(paired, .99):+.2f} ms; serve's own CPU {cpu_ms:.2f} ms per request", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--levels", default="1:0.02,64:0.5", help="concurrency:latency pairs")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jitter", type=float, default=0.2,
                        help="upstream latency varies by +-this share (0: every client in lock step, which makes "
                             "64 requests arrive in the same instant, wave after wave)")
    parser.add_argument("--layouts", default="own-core,shared",
                        help="own-core: serve on one CPU, this script (client and fake upstream) on the others; "
                             "shared: all of them on every CPU")
    args = parser.parse_args()
    import fakevendor

    cpus = sorted(os.sched_getaffinity(0))
    root, vendor = fakevendor.start_server(key=KEY)
    print(f"serve overhead: {len(cpus)} CPUs, {args.requests} requests x {args.rounds} rounds per level")
    try:
        for layout in args.layouts.split(","):
            if layout == "own-core" and len(cpus) < 2:
                print("  own-core layout skipped: it needs 2 CPUs")
                continue
            mine, its = (set(cpus[1:]), {cpus[0]}) if layout == "own-core" else (set(cpus), set(cpus))
            # the fake vendor is a process of its own: pinning this script would not move it
            pin(os.getpid(), mine)
            pin(vendor.pid, mine)
            print(f"layout {layout}: serve on CPU {sorted(its)}, client and upstream on CPU {sorted(mine)}")
            with tempfile.TemporaryDirectory() as tmp:
                serve, url = start_serve(root, Path(tmp))
                relay, relay_url = start_minimal_relay(root)
                for process in (serve, relay):
                    pin(process.pid, its)  # every thread it has started, not only its main one
                try:
                    for pair in args.levels.split(","):
                        level, latency = int(pair.split(":")[0]), float(pair.split(":")[1])
                        run_level(args, root, {"serve": (url, serve.pid), "relay": (relay_url, relay.pid)},
                                  level, latency)
                finally:
                    for process in (serve, relay):
                        process.terminate()
                        process.wait(timeout=10)
    finally:
        pin(os.getpid(), set(cpus))
        fakevendor.stop_server(vendor)


def run_level(args: argparse.Namespace, root: str, paths: dict[str, tuple[str, int]], level: int,
              latency: float) -> None:
    """Direct, then each path in turn, round after round; paths maps a name to (url, pid)."""
    direct: dict[tuple[int, int, int], float] = {}
    routed: dict[str, dict[tuple[int, int, int], float]] = {name: {} for name in paths}
    cpu_ms: dict[str, list[float]] = {name: [] for name in paths}
    sent = max(1, args.requests // level) * level
    for run in range(args.rounds):
        for key, ms in asyncio.run(measure(root + "/v1/chat/completions", {"authorization": f"Bearer {KEY}"},
                                           {"model": "gpt-5.4-nano"}, args.requests, level, latency,
                                           args.jitter)).items():
            direct[run, *key] = ms
        for name, (url, pid) in paths.items():
            cpu = _cpu_seconds(pid)
            for key, ms in asyncio.run(measure(url + "/v1/chat/completions", {}, {"model": "auto"},
                                               args.requests, level, latency, args.jitter)).items():
                routed[name][run, *key] = ms
            cpu_ms[name].append((_cpu_seconds(pid) - cpu) * 1000 / sent)
    report(level, latency, direct, routed["serve"], statistics.mean(cpu_ms["serve"]))
    keys = [key for key in direct if key in routed["relay"] and key[2] > 0]
    floor = [routed["relay"][key] - direct[key] for key in keys]
    print(f"      a do-nothing Python relay (benchmarks/minimal_relay.py), same run: request by request "
          f"p50 {pct(floor, .5):+.2f} ms p99 {pct(floor, .99):+.2f} ms; its CPU "
          f"{statistics.mean(cpu_ms['relay']):.2f} ms per request", flush=True)


if __name__ == "__main__":
    main()
