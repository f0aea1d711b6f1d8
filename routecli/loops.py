"""The event loop routecli's async work runs on: serve's (`--loop`) and batch's; ROUTECLI_LOOP
sets both (auto, uvloop or asyncio)."""

from __future__ import annotations

import asyncio
import os
from typing import Callable

LOOPS = ("auto", "uvloop", "asyncio")


def configured_loop() -> str:
    return os.environ.get("ROUTECLI_LOOP", "auto")


def event_loop(choice: str) -> tuple[Callable[[], asyncio.AbstractEventLoop], str]:
    """The loop factory for `choice` (serve's `--loop`) and its name. uvloop (libuv, in C) when it is
    installed, as uvicorn's `--loop auto` does. Against the same code on asyncio's own loop, at 64
    clients sharing 2 CPUs with them, it cut serve's added p50 by 0.4-1.0 ms and its CPU by ~0.2 ms a
    request (benchmarks/serve_overhead.py --loops asyncio,uvloop); a batch's by 1-2% a request at 64
    lines at a time and 4-8% at 256 (benchmarks/batch_throughput.py --loops asyncio,uvloop)."""
    from routecli.errors import UsageError

    if choice not in LOOPS:
        raise UsageError(f"unknown event loop {choice!r} (--loop, ROUTECLI_LOOP): use one of {', '.join(LOOPS)}")
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise UsageError("uvloop is not installed: pip install uvloop, or use asyncio's own loop "
                                 "(--loop asyncio, ROUTECLI_LOOP=asyncio)") from None
        else:
            return uvloop.new_event_loop, "uvloop"
    return asyncio.new_event_loop, "asyncio"
