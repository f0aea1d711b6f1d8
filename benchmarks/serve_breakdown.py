"""Where the latency `routecli serve` adds goes, under load, as serve's own clock sees it.

    python benchmarks/serve_breakdown.py [--clients 64] [--latency 0.5] [--requests 640] [--rounds 2]
                                         [--layout shared|own-core]

serve runs with a timing shim (this file, loaded in serve's process before routecli's command
line starts) that stamps each non-streaming chat request: read and parsed, the upstream call
begun (`SlotPool.exchange`), the request written to the upstream (the first read of the answer
begins), the answer read whole, the response's write begun and done. As in serve_overhead.py the
same requests also go straight to the fake vendor, the two paths taking turns, and the script prints
the request-by-request p50 that serve adds beside the parts serve's clock sees:

- before the call: routecli's work from the parsed request to the upstream call (the body, the
  classifier, the guards, building the call);
- writing the call: taking a pooled connection and writing the request to it;
- after the answer: from the answer read whole to the response's write (parsing and pricing it,
  judging it, the response's JSON);
- writing the response.

What no stamp in serve sees is the rest: the extra network hops, and the waits for a CPU and for
serve's event loop before serve reads a request or an answer. A request that opened an upstream
connection (each client's first, in a burst) is left out of the parts, as its time is left out of
the p50.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import sys
import tempfile
import time
from pathlib import Path

SHIM = "--serve-with-shim"  # argv[1] of the serve process: the stamps' file follows, then serve's arguments
PARTS = (("before the call", "parsed", "call"), ("writing the call", "call", "sent"),
         ("after the answer", "answered", "respond"), ("writing the response", "respond", "responded"))


def install_shim(out: str) -> None:
    """In serve's process: stamp every request (see the module docstring); written to `out` at exit."""
    from routecli.providers import h1, pool
    from routecli.serve import http

    stamps: dict[asyncio.Task, dict[str, float]] = {}  # the connection's task -> its current request's stamps
    done: list[dict[str, float]] = []

    def stamp(name: str, once: bool = False) -> None:
        task = asyncio.current_task()
        if task is not None and task in stamps and not (once and name in stamps[task]):
            stamps[task][name] = time.perf_counter()

    def wrap(owner, name: str, before: str | None = None, after: str | None = None, once: bool = False) -> None:
        original = getattr(owner, name)

        async def timed(*args, **kwargs):
            if before:
                stamp(before, once)
            result = await original(*args, **kwargs)
            if after:
                stamp(after, once)
            return result

        setattr(owner, name, timed)

    next_request = http._next_request

    async def parsed(*args, **kwargs):
        request = await next_request(*args, **kwargs)
        stamps[asyncio.current_task()] = {"parsed": time.perf_counter()}
        return request

    send = http._send

    async def respond(*args, **kwargs):
        stamp("respond")
        await send(*args, **kwargs)
        stamp("responded")
        done.append(stamps.pop(asyncio.current_task(), {}))

    http._next_request, http._send = parsed, respond
    wrap(pool.SlotPool, "exchange", before="call", after="answered")
    wrap(pool.SlotPool, "_open", before="opened")
    wrap(h1.Connection, "_receive", before="sent", once=True)
    atexit.register(lambda: Path(out).write_text(json.dumps(done)))


def serve_with_shim() -> None:
    out, *serve_args = sys.argv[2:]
    install_shim(out)
    sys.argv = ["routecli", *serve_args]
    from routecli.cli import main

    main()


def report_parts(stamped: list[dict[str, float]], paired_p50: float) -> None:
    from serve_overhead import pct

    whole = [s for s in stamped if "opened" not in s and all(name in s for _, a, b in PARTS for name in (a, b))]
    print(f"  serve's clock, {len(whole)} requests ({len(stamped) - len(whole)} that opened an upstream connection or "
          "were not answered whole left out), ms:")
    for label, start, end in PARTS:
        values = [(s[end] - s[start]) * 1000 for s in whole]
        print(f"    {label:20s} p50 {pct(values, .5):.3f}  p90 {pct(values, .9):.3f}")
    seen = [sum(s[end] - s[start] for _, start, end in PARTS) * 1000 for s in whole]
    print(f"    all four             p50 {pct(seen, .5):.3f}  p90 {pct(seen, .9):.3f}")
    print(f"  the rest of the request-by-request p50 (hops, waits for a CPU and for the event loop): "
          f"{paired_p50 - pct(seen, .5):+.3f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.5, help="upstream latency, seconds (+-20%%)")
    parser.add_argument("--requests", type=int, default=640, help="per path and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--layout", choices=("shared", "own-core"), default="shared")
    args = parser.parse_args()
    if min(args.clients, args.requests, args.rounds) < 1 or args.latency < 0:
        parser.error("--clients, --requests and --rounds must be 1 or more, --latency 0 or more")
    # importing serve_overhead puts tests/ (the fake vendor) on the path
    from serve_overhead import KEY, Route, cpu_ticks, pct, pin, run_level, start_serve, stolen

    import fakevendor
    from routecli.loops import event_loop

    cpus = sorted(os.sched_getaffinity(0))
    mine, its = (set(cpus[1:]), {cpus[0]}) if args.layout == "own-core" and len(cpus) > 1 else (set(cpus), set(cpus))
    root, vendor = fakevendor.start_server(key=KEY)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "stamps.json"
        serve, url, _ = start_serve(root, Path(tmp), "auto", [sys.executable, __file__, SHIM, str(out)])
        try:
            for pid, where in ((os.getpid(), mine), (vendor.pid, mine), (serve.pid, its)):
                pin(pid, where)
            direct = Route("direct", root + "/v1/chat/completions", {"authorization": f"Bearer {KEY}"},
                           {"model": "gpt-5.4-nano"}, None, 260)
            via = Route("serve", url + "/v1/chat/completions", {}, {"model": "auto"}, serve.pid, 260)
            before = cpu_ticks()
            with asyncio.Runner(loop_factory=event_loop("auto")[0]) as runner:
                runner.run(run_level([direct, via], args.clients, args.latency, args.requests, args.rounds, 0.2,
                                     "lean"))
            steal = stolen(before, cpu_ticks())
        finally:
            serve.terminate()
            serve.wait(timeout=10)
            pin(os.getpid(), set(cpus))
            fakevendor.stop_server(vendor)
        paired = [via.times[key] - direct.times[key] for key in direct.times if key in via.times]
        print(f"{args.layout}, {args.clients} clients, upstream {args.latency * 1000:.0f} ms: request by request p50 "
              f"{pct(paired, .5):+.2f} ms; serve's CPU {via.cpu_seconds * 1000 / via.sent:.2f} ms a request; "
              f"steal {steal}")
        report_parts(json.loads(out.read_text()), pct(paired, .5))


if __name__ == "__main__":
    sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
    serve_with_shim() if sys.argv[1:2] == [SHIM] else main()
