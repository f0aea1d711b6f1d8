"""Where a command on an event loop (serve, batch) does its store work: on SQLite right there, on a
database server on threads.

On a database server every store call waits for the network, and on the event loop that wait held
up every request or line in flight: at 64 clients, `routecli serve` with a ledger 2 ms away added
~2.4 s a request under a budget and +30 ms at p99 without one (benchmarks/serve_ledger.py). psycopg
waits for the network without holding the interpreter, so on threads those waits overlap with the
loop's work and with each other, and the calls reserving a budget at the same moment share one
transaction (store/combine.py). On SQLite the work stays on the loop: a local write is quicker than
handing it to a thread (batch/writer.py).
"""

from __future__ import annotations

import asyncio
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from routecli.guard.gate import Gate
    from routecli.store import Store

# Enough that the calls reserving at one moment all wait on threads, where they share a transaction;
# with 8, some waited in the pool's queue for the next one (benchmarks/serve_ledger.py, a ledger 2 ms
# away under a budget: serve's p99 +265 ms with 8 threads, +89 with 32).
THREADS = 32
BREAKERS_EVERY = 0.5  # seconds between the background reads of the breakers (their copy lives 1 s: gate.py)


class StoreWork:
    """`await work(fn, *args)`: fn(*args) here on SQLite, on a thread on a database server."""

    def __init__(self, store: Store) -> None:
        self.pool = None if store.engine.dialect.name == "sqlite" else \
            ThreadPoolExecutor(THREADS, thread_name_prefix="routecli-store")
        self._behind: set[Future[Any]] = set()

    @property
    def threaded(self) -> bool:
        return self.pool is not None

    async def __call__(self, work: Callable[..., Any], *args: Any,
                       if_abandoned: Callable[[Any], None] | None = None) -> Any:
        """work(*args); with if_abandoned, a caller cancelled while it ran on a thread has
        if_abandoned(its result) called once it is done (e.g. to free a budget hold nobody will use)."""
        if self.pool is None:
            return work(*args)
        running = asyncio.get_running_loop().run_in_executor(self.pool, work, *args)
        if if_abandoned is None:
            return await running
        try:
            return await asyncio.shield(running)
        except asyncio.CancelledError:
            running.add_done_callback(lambda done: _succeeded(done) and if_abandoned(done.result()))
            raise

    def behind(self, work: Callable[..., Any], *args: Any) -> None:
        """work(*args) on a thread, nobody waiting for it (a failure is said on stderr); settle() waits
        for it. Only on a database server: on SQLite the caller decides when such work runs."""
        assert self.pool is not None
        future = self.pool.submit(work, *args)
        self._behind.add(future)
        future.add_done_callback(self._behind_done)

    def _behind_done(self, future: Future[Any]) -> None:
        self._behind.discard(future)
        if not future.cancelled() and future.exception() is not None:
            sys.stderr.write(f"routecli: {future.exception()}\n")

    async def settle(self) -> None:
        """Wait for the work behind() started."""
        for future in list(self._behind):
            await asyncio.wrap_future(future)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)  # the work still queued is done first


def _succeeded(done: asyncio.Future[Any]) -> bool:
    return not done.cancelled() and done.exception() is None


def breakers_elsewhere(gate: Gate, work: StoreWork) -> asyncio.Task[None] | None:
    """On a database server, read the breakers again in the background (the gate then never reads
    them on a request's path, and uses the copy it has meanwhile); None on SQLite or breakers off."""
    if not work.threaded or not gate.config.guards.breaker.enabled:
        return None
    gate.reload_elsewhere = True
    gate.reload_breakers()  # the first calls have a copy to use
    return asyncio.get_running_loop().create_task(_reload_breakers(gate, work))


async def _reload_breakers(gate: Gate, work: StoreWork) -> None:
    """Keep the breakers' copy fresh off the loop; a failed read keeps the old copy (and is said once)."""
    failing = False
    while True:
        await asyncio.sleep(BREAKERS_EVERY / 10)
        if not gate.breakers_due(BREAKERS_EVERY):
            continue
        try:
            await work(gate.reload_breakers)
            failing = False
        except Exception as exc:
            if not failing:
                sys.stderr.write(f"routecli: could not read the circuit breakers: {exc}; check the database "
                                 "(--db); the last copy is used meanwhile\n")
            failing = True
