"""The event loop routecli's async work runs on: serve's (`--loop`) and batch's; ROUTECLI_LOOP
sets both (auto, uvloop or asyncio). And Watch: the timeout of a connection's repeated waits."""

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


class Watch:
    """Calls `expired()` once a wait begun with begin(timeout) has lasted `timeout` seconds, unless
    end() came first. One timer per watch, moved on only when it fires: an asyncio.timeout around
    every read armed and cancelled a timer each time (~6.5 µs on uvloop, three per request through
    serve: its read of the request, two of the upstream's answer)."""

    def __init__(self, expired: Callable[[], None]) -> None:
        self._loop, self._expired = asyncio.get_running_loop(), expired
        self._waiting: tuple[float, float] | None = None  # (when the wait began, its timeout)
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0

    def begin(self, timeout: float) -> None:
        now = self._loop.time()
        self._waiting = (now, timeout)
        if self._timer is None or now + timeout < self._due:  # none set, or set too late for this wait
            self._arm(now + timeout)

    def end(self) -> None:
        self._waiting = None

    def cancel(self) -> None:
        self._waiting = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, due: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._due = self._loop.call_at(due, self._fire), due

    def _fire(self) -> None:
        self._timer = None
        if self._waiting is None:
            return  # between waits: the next begin() sets it again
        began, timeout = self._waiting
        if self._loop.time() - began >= timeout:
            self._waiting = None
            self._expired()
        else:
            self._arm(began + timeout)
