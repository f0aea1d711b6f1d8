"""Instructions routecli serve runs per request, counted by valgrind: a figure that repeats.

    python benchmarks/serve_instructions.py [--requests 60,260] [--part request|score|assess]

Wall-clock figures of the same code move by a fifth from one hour to the next on the 2-CPU test VM
(other guests evict the caches; benchmarks/SERVE_OVERHEAD.md), so a change of a few per cent in
serve's own work cannot be seen in them. An instruction count can: callgrind counts the same code to
~1% whatever else the machine is doing. Each count runs in a fresh process under
`valgrind --tool=callgrind`, twice (the two --requests), and the script prints the difference over
the extra requests, so start-up and warm-up cancel out.

--part request (the default): serve's HTTP handler in one process, as serve_inprocess.py runs it,
one request after another: the sample prompts, the upstream answered from memory with a real answer
of the fake vendor (260 words, its own token counts), the ledger written to SQLite. Everything serve
does for a request is counted, the work it puts off until after the answer included.
--part score: the learned classifier alone on the sample prompts; --part assess: the answer's
assessment alone (the same 260-word answer), per prompt.

Instructions are not time (a cache miss costs more than many instructions), but on this VM serve's
latency figures moved with them: see SERVE_OVERHEAD.md, "What moved the figures".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import serve_inprocess  # this script's folder is on sys.path; it puts tests/ and the project there too
from serve_overhead import KEY, PROMPTS, ROOT, serve_config

PARTS = ("request", "score", "assess")


def requests_in_process(count: int) -> None:
    """`count` chat requests through serve's handler, one after another (see the module docstring)."""
    import fakevendor

    from routecli.config import db_location, load_config
    from routecli.keys import KeyRing
    from routecli.loops import event_loop
    from routecli.serve import relay as serve_relay
    from routecli.serve.api import Api
    from routecli.serve.run import settle_heap
    from routecli.store import open_store

    root, vendor = fakevendor.start_server(key=KEY)
    home = Path(tempfile.mkdtemp())
    (home / "config.toml").write_text(serve_config(root))
    os.environ.update(ROUTECLI_HOME=str(home), OPENAI_API_KEY=KEY)

    async def main() -> None:
        config = load_config()
        relay = serve_relay.Relay(config, KeyRing(config), open_store(db_location(None)))
        relay.start()
        relay.warm()
        api = Api(config, relay)
        client = relay._providers["openai"].client
        answer = await serve_inprocess._one_real_answer(api, client)
        settle_heap()  # as serve does once it is warm (serve/run.py)

        async def from_memory(*args, **kwargs):
            return answer

        client.exchange = from_memory
        for i in range(count):
            await serve_inprocess.through_serve(api, serve_inprocess.raw_request(100 + i))
            # The answer from memory never lets the loop wait: wait out the work serve puts off (LATER),
            # or it all piles up until close() and the collector walks it again and again.
            await asyncio.sleep(serve_relay.LATER * 1.5)
        await relay.close()
        fakevendor.stop_server(vendor)

    try:
        with asyncio.Runner(loop_factory=event_loop("auto")[0]) as runner:
            runner.run(main())
    finally:
        shutil.rmtree(home, ignore_errors=True)


def parts_alone(part: str, rounds: int) -> None:
    """The classifier or the assessment on every sample prompt, `rounds` times."""
    from routecli.domain import Message, Reply, Request
    from routecli.routing import assess, learned
    from routecli.routing.signals import extract_signals

    requests = [Request((Message("user", f"{prompt} [[delay=0.5 reasoning={i} words=260]]"),))
                for i, prompt in enumerate(PROMPTS)]
    model = learned.load()
    answer = Reply(" ".join(f"word{i}" for i in range(1, 261)), None, "m", "stop", None, 0.0)
    signals = [extract_signals(request) for request in requests]
    asked = [assess.expect(request, found) for request, found in zip(requests, signals)]
    for _ in range(rounds):
        for i, request in enumerate(requests):
            if part == "score":
                model.score(request)
            else:
                assess.assess(request, answer, signals=signals[i], asked=asked[i])


def count(part: str, n: int) -> int:
    """Instructions of a fresh process doing `n` units of `part`."""
    done = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
                           __file__, "--child", part, str(n)], capture_output=True, text=True, cwd=ROOT)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode or not found:
        raise SystemExit(f"valgrind run failed:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", default="60,260", help="two counts: requests (or rounds of prompts) per run")
    parser.add_argument("--part", choices=PARTS, default="request")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        part, n = args.child[0], int(args.child[1])
        return requests_in_process(n) if part == "request" else parts_alone(part, n)
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: apt-get install -y valgrind")
    counts = args.requests.split(",")
    if len(counts) != 2 or not all(n.strip().isdigit() for n in counts) or len(set(map(int, counts))) != 2:
        parser.error(f"--requests {args.requests!r}: give two different counts, e.g. 60,260")
    low, high = sorted(map(int, counts))
    per = high - low if args.part == "request" else (high - low) * len(PROMPTS)
    total = (count(args.part, high) - count(args.part, low)) / per
    unit = "request through serve's handler" if args.part == "request" else f"prompt ({args.part})"
    print(f"{total / 1e6:.3f} M instructions per {unit} ({args.requests.replace(',', ' and ')} "
          f"{'requests' if args.part == 'request' else 'rounds of the sample prompts'}, the difference)")


if __name__ == "__main__":
    main()
