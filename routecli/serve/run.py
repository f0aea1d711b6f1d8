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


LOOPS = ("auto", "uvloop", "asyncio")


def run_server(config: Config, keys: KeyRing, db: str, host: str, port: int,
               ready: Callable[[str], None] | None = None, loop: str = "auto") -> None:
    factory, name = event_loop(loop)
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(_main(config, keys, db, host, port, ready, name))


def event_loop(choice: str) -> tuple[Callable[[], asyncio.AbstractEventLoop], str]:
    """The loop factory for `--loop` and its name. uvloop (libuv, in C) when it is installed, as
    uvicorn's `--loop auto` does: at 64 clients sharing 2 CPUs with them, it cut serve's added p50 by
    0.4-1.0 ms and its CPU by ~0.2 ms a request against the same code on asyncio's own loop
    (benchmarks/serve_overhead.py --loops asyncio,uvloop)."""
    from routecli.errors import UsageError

    if choice not in LOOPS:
        raise UsageError(f"unknown event loop {choice!r}: use one of {', '.join(LOOPS)}")
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise UsageError("uvloop is not installed: pip install uvloop, or use --loop asyncio") from None
        else:
            return uvloop.new_event_loop, "uvloop"
    return asyncio.new_event_loop, "asyncio"


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
