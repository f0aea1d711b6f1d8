"""Latency `routecli serve` adds over calling the upstream directly, measured side by side.

    python benchmarks/serve_overhead.py [--requests 400] [--levels 1:0.02,64:0.5]

The upstream is tests/fakevendor.py with a fixed latency per answer (per level: the fake vendor
is a Python thread server on the same 2 cores, so at 64 clients its latency must leave it
enough requests per second to keep up, or the figures measure its queue, not routecli). For each concurrency level,
the same client (keep-alive) sends the same OpenAI chat requests straight to the fake
vendor and through `routecli serve` (model "auto": the classifier, the guards and the ledger all
run), and the script prints p50/p99 of each and the overhead two ways: the difference of the two
paths' percentiles, and the percentiles of the request-by-request differences (each client asks
for the same upstream delays on every path, so request i of client c is the same work either way;
with +-20% jitter on the delay, this pairing removes the spread the jitter adds to the first).
The prompts are sample_prompts/'s (text only), in turn. Every reply reports token counts of its own
(a `reasoning` directive), as real replies do: with the same counts on every reply, serve would
price the first one and reuse that price. And every reply is --answer-words words long (260: ~1.9
kB, about the median answer, 1.6 kB, of the 5,432 in ../shared/data/arena_bench_v1), since serve
reads and re-sends the answer and judges it. Target (issue 8): p50 overhead under 2 ms.

The client is benchmarks/lean_http.py (httptools on asyncio streams, on uvloop when installed:
~0.25-0.65 ms of CPU a request here) rather than httpx (1.7-2.8 ms at 64 clients): the load generator shares the
2 CPUs with serve in the "shared" layout, and a heavy one put its own contention in serve's figure.
--client httpx brings the old one back; each level prints the load generator's CPU per request.

The paths take turns, so a spell of noise on the machine (this VM has them: the direct path's
own p99 jumps from tens to hundreds of ms for a while) falls on all of them alike rather than on
whichever path was being measured then. At 1 client each request goes to every path in turn,
back to back, the order rotating from one request to the next (each path's first request opens
its connection and is left out). At 64 clients each path in turn gets 64 clients on fresh
connections sending --requests requests, round after round (--rounds), the order rotating each
round; each client's first request (connection set-up, in one burst of all 64) is left out.

The same requests also go through benchmarks/minimal_relay.py, a third path: a relay that only
forwards (asyncio streams and httptools on the event loop serve runs on; no routing, no ledger),
pinned like serve: the
overhead any Python relay has on this machine, measured beside serve's. On the 2-CPU test VM
code that runs after its CPU sat idle for a few milliseconds runs several times slower than
back to back, and each request wakes the relay twice (the request, then the upstream's answer),
so this floor is not small there. Each level also prints the steal time of every CPU (from
/proc/stat: the hypervisor running other guests while this VM had work), so a run taken in a
noisy spell says so itself.

--loops asyncio,uvloop starts a serve and a relay on each event loop (`routecli serve --loop`), all
the paths taking turns in one run: the loops compared side by side. The default is serve's own choice.

Two layouts. "own-core": serve alone on one CPU, the load generator and the fake upstream on
the rest, as in a deployment where the endpoint does not share its core with the programs
calling it. "shared": all three processes on every CPU; on a 2-CPU machine the client and the
upstream then preempt serve mid-request, and that contention is in the figure too.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Awaitable, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
from routecli.errors import UsageError  # noqa: E402
from routecli.loops import LOOPS, event_loop  # noqa: E402
KEY = "bench-key-0123456789"
# the text prompts of sample_prompts/ (16-266 characters; the classifier reads each one)
PROMPTS = [json.loads(line)["prompt"] for path in sorted((ROOT / "sample_prompts").glob("*.jsonl"))
           for line in path.read_text().splitlines() if line.strip() and "image" not in json.loads(line)]


def serve_config(vendor_root: str) -> str:
    """The config.toml of the benchmarks' serve, over the fake vendor at `vendor_root`."""
    return (f'[providers.openai]\nbase_url = "{vendor_root}/v1"\npricing_provider = "openai"\n'
            # three tiers, as by default, all at the fake vendor: the classifier's score picks the model
            '[routing]\ntier_order = ["cheap", "standard", "premium"]\n[tiers.cheap]\nmodels = ["openai:gpt-5.4-nano"]\n'
            '[tiers.standard]\nmodels = ["openai:gpt-5.4-mini"]\n[tiers.premium]\nmodels = ["openai:gpt-5.5"]\n'
            # an escalation would be a second upstream call: a choice the router made, not serve's overhead
            "[escalation]\nenabled = false\n")


def start_serve(vendor_root: str, home: Path, loop: str, command: list[str] | None = None, *,
                more_config: str = "", env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str, str]:
    """`routecli serve` (or `command`, whose arguments then go on with serve's) over the fake vendor;
    `more_config` goes at the end of its config.toml, `env` into its environment."""
    (home / "config.toml").write_text(serve_config(vendor_root) + more_config)
    env = {**os.environ, "ROUTECLI_HOME": str(home), "OPENAI_API_KEY": KEY, **(env or {})}
    command = command or [sys.executable, "-m", "routecli"]
    return _listening(subprocess.Popen([*command, "serve", "--port", "0", "--loop", loop],
                                       env=env, stderr=subprocess.PIPE, text=True, cwd=ROOT))


def start_minimal_relay(vendor_root: str, loop: str) -> tuple[subprocess.Popen, str, str]:
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    return _listening(subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "minimal_relay.py"), vendor_root,
                                        loop], env=env, stderr=subprocess.PIPE, text=True, cwd=ROOT))


def _listening(process: subprocess.Popen) -> tuple[subprocess.Popen, str, str]:
    """The process, its URL and the event loop it says it runs on."""
    line = process.stderr.readline()
    if "listening on" not in line:
        process.kill()
        raise SystemExit(f"{process.args[1]} did not start: {line}{process.stderr.read()}")
    loop = re.search(r"(\w+) event loop", line)
    return process, line.split("listening on ", 1)[1].split()[0], loop.group(1) if loop else "unknown"


class Route:
    """One path to the upstream: its chat URL, headers, body template and (for CPU time) its process."""

    def __init__(self, name: str, url: str, headers: dict, body: dict, pid: int | None, answer_words: int) -> None:
        self.name, self.url, self.headers, self.body, self.pid = name, url, headers, body, pid
        self.answer_words = answer_words
        self.times: dict[tuple[int, int, int], float] = {}  # (round, client, request) -> ms
        self.cpu_seconds = 0.0
        self.client_seconds = 0.0  # the load generator's CPU (this process's) for this route's requests
        self.sent = 0


async def run_level(routes: list[Route], concurrency: int, latency: float, requests: int, rounds: int,
                    jitter: float, kind: str) -> None:
    """Every route, taking turns (see the module docstring); fills each route's times."""
    # The load generator's own collector pauses (one full collection stalled every request in
    # flight by ~200 ms, whichever route was being measured) are not serve's overhead.
    gc.collect()
    gc.disable()
    try:
        if concurrency == 1:
            await _one_client(routes, latency, requests * rounds, jitter, kind)
        else:
            for turn in range(rounds):
                for k in range(len(routes)):
                    route = routes[(turn + k) % len(routes)]  # the order rotates: no route always goes first
                    await _clients(route, concurrency, latency, requests, jitter, turn, kind)
    finally:
        gc.enable()


async def _one_client(routes: list[Route], latency: float, requests: int, jitter: float, kind: str) -> None:
    opened = [await senders(kind, route, 1) for route in routes]
    try:
        for route, (posts, _) in zip(routes, opened):
            await _send(posts[0], route, latency)  # opens the connection: a warm-up, not measured
        rng = random.Random(0)
        for i in range(requests):
            wait = latency * (1 + rng.uniform(-jitter, jitter))
            for k in range(len(routes)):
                at = (i + k) % len(routes)  # the order rotates: no route always goes first
                route = routes[at]
                started = _cpu(route)
                route.times[0, 0, i] = await _send(opened[at][0][0], route, wait, PROMPTS[i % len(PROMPTS)], i)
                _count(route, started, 1)
    finally:
        for _, close in opened:
            await close()


async def _clients(route: Route, concurrency: int, latency: float, requests: int, jitter: float, turn: int,
                   kind: str) -> None:
    """`concurrency` clients on fresh connections, `requests` in all; each one's first request (the
    connection set-up, in one burst with all the others) is not measured."""
    async def worker(post: Post, seed: int) -> None:
        rng = random.Random(turn * 1000 + seed)  # the same latencies on every route
        for i in range(max(2, requests // concurrency)):
            wait = latency * (1 + rng.uniform(-jitter, jitter))
            ms = await _send(post, route, wait, PROMPTS[(seed + i) % len(PROMPTS)], seed * 1000 + i)
            if i:
                route.times[turn, seed, i] = ms

    started = _cpu(route)
    posts, close = await senders(kind, route, concurrency)
    try:
        await asyncio.gather(*(worker(post, seed) for seed, post in enumerate(posts)))
    finally:
        await close()
    _count(route, started, max(2, requests // concurrency) * concurrency)


Post = Callable[[dict], Awaitable[object]]


async def senders(kind: str, route: Route, count: int) -> tuple[list[Post], Callable[[], Awaitable[None]]]:
    """`count` clients' ways to POST to the route, and how to close them all. "lean": a connection
    each (benchmarks/lean_http.py); "httpx": one AsyncClient with a pool of `count` connections."""
    if kind == "lean":
        from lean_http import Connection

        connections = [Connection(route.url, route.headers) for _ in range(count)]

        async def close_all() -> None:
            for connection in connections:
                connection.close()

        return [lambda payload, c=connection: c.post(json.dumps(payload).encode()) for connection in connections], \
            close_all
    import httpx

    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    client = httpx.AsyncClient(limits=limits, timeout=30)

    async def post(payload: dict) -> object:
        return (await client.post(route.url, json=payload, headers=route.headers)).raise_for_status()

    return [post] * count, client.aclose


async def _send(post: Post, path: Route, wait: float, text: str = "warm up", tokens: int = 0) -> float:
    # `reasoning` adds to the answer's token count: every reply has counts of its own, as real ones do,
    # so serve prices each one afresh rather than finding the last reply's price
    content = f"{text} [[delay={wait:.4f} reasoning={tokens} words={path.answer_words}]]"
    payload = {**path.body, "messages": [{"role": "user", "content": content}]}
    started = time.perf_counter()
    async with asyncio.timeout(30):
        await post(payload)
    return (time.perf_counter() - started) * 1000


def _cpu(path: Route) -> tuple[float, float]:
    return _cpu_seconds(path.pid) if path.pid else 0.0, time.process_time()


def _count(path: Route, started: tuple[float, float], sent: int) -> None:
    if path.pid:
        path.cpu_seconds += _cpu_seconds(path.pid) - started[0]
    path.client_seconds += time.process_time() - started[1]
    path.sent += sent


def pin(pid: int, cpus: set[int]) -> None:
    """Move every thread of a process (a thread started later inherits its creator's CPUs)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), cpus)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_ticks() -> dict[int, tuple[int, int]]:
    """Per CPU, (ticks in all, ticks stolen): the time the hypervisor ran something else on this
    virtual CPU while it had work (the 8th field of /proc/stat); {} where the kernel gives none."""
    found = {}
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        name, *fields = line.split()
        if name.startswith("cpu") and name != "cpu" and len(fields) >= 8:
            values = [int(v) for v in fields[:8]]
            found[int(name[3:])] = (sum(values), values[7])
    return found


def stolen(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]) -> str:
    shares = []
    for cpu in sorted(after):
        if cpu in before:
            total, steal = (a - b for a, b in zip(after[cpu], before[cpu]))
            shares.append(f"CPU {cpu} {100 * steal / max(1, total):.1f}%")
    return ", ".join(shares) or "not reported"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(level: int, latency: float, steal: str, direct: Route, pairs: list[tuple[Route, Route]]) -> None:
    for serve, relay in pairs:
        keys = [key for key in direct.times if key in serve.times]
        d = [direct.times[key] for key in keys]
        r = [serve.times[key] for key in keys]
        paired = [serve.times[key] - direct.times[key] for key in keys]
        floor = [relay.times[key] - direct.times[key] for key in keys if key in relay.times]
        own = [serve.times[key] - relay.times[key] for key in keys if key in relay.times]
        print(f"  concurrency {level:>3}, upstream {latency * 1000:.0f} ms, {len(keys)} requests: direct p50 "
              f"{pct(d, .5):.2f} p99 {pct(d, .99):.2f} ms | via {serve.name} p50 {pct(r, .5):.2f} "
              f"p99 {pct(r, .99):.2f} ms")
        print(f"      overhead: difference of p50s {pct(r, .5) - pct(d, .5):+.2f} ms, "
              f"of p99s {pct(r, .99) - pct(d, .99):+.2f} ms; request by request (same client, same upstream delay) "
              f"p50 {pct(paired, .5):+.2f} ms p99 {pct(paired, .99):+.2f} ms; serve's own CPU "
              f"{serve.cpu_seconds * 1000 / serve.sent:.2f} ms per request")
        print(f"      a do-nothing Python relay (benchmarks/minimal_relay.py, {relay.name}), same run: request by "
              f"request p50 {pct(floor, .5):+.2f} ms p99 {pct(floor, .99):+.2f} ms; its CPU "
              f"{relay.cpu_seconds * 1000 / relay.sent:.2f} ms per request; serve over this relay, request by request: "
              f"p50 {pct(own, .5):+.2f} ms (routing, guards and ledger: what routecli itself adds)")
    print("      the load generator's CPU per request: " + ", ".join(
        f"{route.name} {route.client_seconds * 1000 / max(1, route.sent):.2f} ms"
        for route in [direct, *(route for both in pairs for route in both)]))
    # A noisy spell shows here: time the host gave to other guests while this VM's CPUs had work.
    print(f"      steal time (the hypervisor running something else) during this level: {steal}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--levels", default="1:0.02,64:0.5", help="concurrency:latency pairs")
    parser.add_argument("--rounds", type=int, default=3, help="each path gets --requests x --rounds requests")
    parser.add_argument("--jitter", type=float, default=0.2,
                        help="upstream latency varies by +-this share (0: every client in lock step, which makes "
                             "64 requests arrive in the same instant, wave after wave)")
    parser.add_argument("--layouts", default="own-core,shared",
                        help="own-core: serve on one CPU, this script (client and fake upstream) on the others; "
                             "shared: all of them on every CPU")
    parser.add_argument("--answer-words", type=int, default=260, help="words in every answer")
    parser.add_argument("--loops", default="auto",
                        help="serve's --loop, comma-separated: each gets a serve and a relay of its own, all taking "
                             "turns in one run (asyncio,uvloop compares the two side by side)")
    parser.add_argument("--client", choices=("lean", "httpx"), default="lean",
                        help="the load generator: lean (benchmarks/lean_http.py: httptools on asyncio streams) or "
                             "httpx (1.7-2.8 ms of CPU a request at 64 clients on the test VM, from the cores serve shares)")
    parser.add_argument("--client-loop", default="auto", choices=LOOPS, help="the load generator's event loop")
    args = parser.parse_args()
    try:
        client_loop, loop_name = event_loop(args.client_loop)
    except UsageError as exc:  # uvloop asked for and not installed
        parser.error(str(exc))
    args.client_loop_factory = client_loop
    if args.answer_words < 1:
        parser.error("--answer-words must be 1 or more (260: about a median answer)")
    import fakevendor

    print(f"load generator: {args.client} on {loop_name}")

    cpus = sorted(os.sched_getaffinity(0))
    root, vendor = fakevendor.start_server(key=KEY)
    print(f"serve overhead: {len(cpus)} CPUs, {args.requests * args.rounds} requests per path and level, the paths "
          "taking turns")
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
                run_layout(args, root, Path(tmp), its)
    finally:
        pin(os.getpid(), set(cpus))
        fakevendor.stop_server(vendor)


def run_layout(args: argparse.Namespace, root: str, tmp: Path, its: set[int]) -> None:
    """Every level, with a serve and a relay per event loop pinned to `its` CPUs."""
    started: list[tuple[subprocess.Popen, str, str]] = []  # (process, URL, its event loop): serve, relay, serve...
    try:
        for loop in args.loops.split(","):
            (tmp / loop).mkdir()
            started.append(start_serve(root, tmp / loop, loop))
            started.append(start_minimal_relay(root, loop))
        for process, _, _ in started:
            pin(process.pid, its)  # every thread it has started, not only its main one
        for pair in args.levels.split(","):
            level, latency = int(pair.split(":")[0]), float(pair.split(":")[1])
            direct = Route("direct", root + "/v1/chat/completions", {"authorization": f"Bearer {KEY}"},
                           {"model": "gpt-5.4-nano"}, None, args.answer_words)
            pairs = [(Route(f"serve ({loop})", url + "/v1/chat/completions", {}, {"model": "auto"}, serve.pid,
                            args.answer_words),
                      Route(relay_loop, relay_url + "/v1/chat/completions", {}, {"model": "auto"}, relay.pid,
                            args.answer_words))
                     for (serve, url, loop), (relay, relay_url, relay_loop) in zip(started[::2], started[1::2])]
            before = cpu_ticks()
            with asyncio.Runner(loop_factory=args.client_loop_factory) as runner:
                runner.run(run_level([direct, *(route for both in pairs for route in both)], level, latency,
                                     args.requests, args.rounds, args.jitter, args.client))
            report(level, latency, stolen(before, cpu_ticks()), direct, pairs)
    finally:
        for process, _, _ in started:
            process.terminate()
            process.wait(timeout=10)


if __name__ == "__main__":
    main()
