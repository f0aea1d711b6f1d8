"""Run the endpoint until Ctrl-C / SIGTERM, then finish the requests in flight and flush the ledger."""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from routecli.config import Config
    from routecli.keys import KeyRing


def run_server(config: Config, keys: KeyRing, db: str, host: str, port: int,
               ready: Callable[[str], None] | None = None, loop: str = "auto") -> None:
    from routecli.loops import event_loop

    factory, name = event_loop(loop)
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(_main(config, keys, db, host, port, ready, name))


def settle_heap() -> None:
    """Once serve is warm. Everything loaded so far lives as long as the server: out of the
    collector's sight, a full collection no longer walks it (one took ~48 ms, stalling every request
    in flight). And a young collection walks the objects of the requests in flight, whose references
    point all over the heap (cache misses): at 64 clients in process, 0.5-0.9 ms for ~700 objects,
    one every ~32 requests; seven times fewer of them took the collector's share of a request from
    30-37 to 10-13 µs (benchmarks/serve_inprocess.py's requests, timed by gc callbacks), for a pause
    of ~3 ms now and then instead of ~0.6 ms more often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(5000, 10, 10)


async def _main(config: Config, keys: KeyRing, db: str, host: str, port: int,
                ready: Callable[[str], None] | None, loop_name: str) -> None:
    from routecli.serve.api import Api
    from routecli.serve.http import start_server
    from routecli.serve.relay import Relay
    from routecli.store import open_store

    store = open_store(db)
    relay = Relay(config, keys, store)
    relay.start()
    relay.warm()
    settle_heap()
    server = await start_server(Api(config, relay), host, port, config.guards.serve.max_body_bytes)
    bound = server.sockets[0].getsockname()
    url = f"http://{bound[0]}:{bound[1]}"
    sys.stderr.write(f"routecli serve: listening on {url} (OpenAI base_url {url}/v1; {loop_name} event loop); "
                     "Ctrl-C stops\n")
    sys.stderr.flush()
    if ready:
        ready(url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()
        await relay.close()
        store.close()
