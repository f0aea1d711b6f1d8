"""routecli serve's own work per request under concurrency, with the network and other processes cut out.

    python benchmarks/serve_inprocess.py [--clients 64] [--requests 8] [--latency 0.5] [--later 0,0.001]

One process, pinned to one CPU, on serve's event loop: `clients` coroutines each send `requests`
OpenAI chat requests (the text prompts of sample_prompts/, each with token counts of its own)
through serve's HTTP handler, one after another; the upstream call is answered from memory (one
real answer of the fake vendor, 260 words) after a wait of `latency` +-20%. Each client starts
after a random wait of up to one latency, so requests do not arrive in waves. A request's time is
from its bytes going in to its response's first byte coming out, minus the upstream wait: what serve
itself adds, including the wait for the other requests' work ahead of it in the event loop.
benchmarks/serve_overhead.py measures the whole endpoint; this isolates what serve's own code and
its scheduling cost, which is steadier on a noisy VM.

--later compares values of serve.relay.LATER (how long work no caller waits for is put off) side by
side: each in a fresh process, taking turns, --runs times.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# this script's folder is on sys.path; importing serve_overhead also puts tests/ and the project there
from serve_overhead import KEY, PROMPTS, ROOT, serve_config


class Sink:
    """A StreamWriter stand-in: keeps the response and when its first byte was written."""

    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.first: float | None = None

    def write(self, data: bytes) -> None:
        if self.first is None:
            self.first = time.perf_counter()
        self.out.append(data)

    async def drain(self) -> None:
        pass

    def close(self) -> None:
        pass


def raw_request(i: int) -> bytes:
    text = f"{PROMPTS[i % len(PROMPTS)]} [[reasoning={i} words=260]]"
    body = json.dumps({"model": "auto", "messages": [{"role": "user", "content": text}]}).encode()
    return (b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%b" % (len(body), body))


async def through_serve(api, data: bytes) -> float:
    from routecli.serve.http import serve_connection

    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    sink = Sink()
    await serve_connection(reader, sink, api, 1 << 20)  # type: ignore[arg-type]
    assert sink.out and b" 200 " in sink.out[0][:20], sink.out
    return sink.first  # type: ignore[return-value]


async def measure(api, relay, clients: int, requests: int, latency: float) -> list[float]:
    from routecli.serve.run import settle_heap

    client = relay._providers["openai"].client
    answer = await _one_real_answer(api, client)
    settle_heap()  # as serve does once it is warm (serve/run.py)
    waited: dict[asyncio.Task, float] = {}

    async def canned(*args, **kwargs):
        wait = latency * random.uniform(0.8, 1.2)
        await asyncio.sleep(wait)
        waited[asyncio.current_task()] += wait  # type: ignore[index]
        return answer

    client.exchange = canned
    added: list[float] = []

    async def one_client(seed: int) -> None:
        await asyncio.sleep(random.uniform(0, latency))
        for i in range(requests):
            waited[asyncio.current_task()] = 0.0  # type: ignore[index]
            started = time.perf_counter()
            first_byte = await through_serve(api, raw_request(seed * 1000 + i))
            if i:  # the first request of each client starts cold: left out
                added.append((first_byte - started - waited[asyncio.current_task()]) * 1000)  # type: ignore[index]

    await asyncio.gather(*(one_client(seed) for seed in range(clients)))
    return added


async def _one_real_answer(api, client):
    real, caught = client.exchange, []

    async def catch(*args, **kwargs):
        caught.append(await real(*args, **kwargs))
        return caught[-1]

    client.exchange = catch
    for i in range(20):  # warm-up, and one real answer to replay
        await through_serve(api, raw_request(i))
    client.exchange = real
    return caught[-1]


def child(args: argparse.Namespace) -> None:
    import fakevendor

    root, vendor = fakevendor.start_server(key=KEY)
    home = Path(tempfile.mkdtemp())
    (home / "config.toml").write_text(serve_config(root))
    os.environ.update(ROUTECLI_HOME=str(home), OPENAI_API_KEY=KEY)
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    from routecli.config import db_location, load_config
    from routecli.keys import KeyRing
    from routecli.loops import event_loop
    from routecli.serve import relay as serve_relay
    from routecli.serve.api import Api
    from routecli.store import open_store

    serve_relay.LATER = args.child_later

    async def main() -> list[float]:
        config = load_config()
        relay = serve_relay.Relay(config, KeyRing(config), open_store(db_location(None)))
        relay.start()
        relay.warm()
        try:
            return await measure(Api(config, relay), relay, args.clients, args.requests, args.latency)
        finally:
            await relay.close()
            fakevendor.stop_server(vendor)

    with asyncio.Runner(loop_factory=event_loop("auto")[0]) as runner:
        added = runner.run(main())
    print(json.dumps(added))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--requests", type=int, default=8, help="per client (the first is left out)")
    parser.add_argument("--latency", type=float, default=0.5, help="upstream wait, seconds (+-20%%)")
    parser.add_argument("--later", default="0.001", help="values of serve.relay.LATER to compare, comma-separated")
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per value, taking turns")
    parser.add_argument("--child-later", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_later is not None:
        return child(args)
    values = [float(v) for v in args.later.split(",")]
    print(f"serve in process: {args.clients} clients x {args.requests} requests, upstream {args.latency * 1000:.0f} ms "
          f"+-20%, one CPU; ms serve adds per request (upstream wait taken out)")
    for run in range(args.runs):
        for value in values if run % 2 == 0 else values[::-1]:
            done = subprocess.run([sys.executable, __file__, "--clients", str(args.clients), "--requests",
                                   str(args.requests), "--latency", str(args.latency), "--child-later", str(value)],
                                  capture_output=True, text=True, cwd=ROOT)
            if done.returncode:
                raise SystemExit(done.stderr[-2000:])
            added = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"  run {run + 1}, LATER {value:g} s: p50 {pct(added, .5):.2f} p90 {pct(added, .9):.2f} "
                  f"mean {sum(added) / len(added):.2f} ({len(added)} requests)", flush=True)


if __name__ == "__main__":
    main()
