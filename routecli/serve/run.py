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
    # Everything loaded so far lives as long as the server: out of the collector's sight, a full
    # collection no longer walks it (one took ~48 ms, stalling every request in flight).
    gc.collect()
    gc.freeze()
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
