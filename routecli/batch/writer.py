"""Group commit: results queue up while the event loop is busy, then go in together.

Under load a transaction carries every result that arrived since the last one; when
results trickle in, each goes in at once, so no worker waits for a timer. Transactions
run on the event loop itself: on a thread they were slower (measured with
benchmarks/batch_throughput.py: the thread and the loop fight over the GIL, and each
line waited ~3x longer for its commit), and a WAL commit without fsync takes well under
a millisecond.

With a linger (routecli serve, when no budget needs its answer to wait), a row nobody waits
for may sit up to that long so the rows around it share one transaction: each commit holds
the loop ~0.6 ms, and under load a commit of one or two rows at a time took that from the
requests in flight (benchmarks/serve_overhead.py). A row someone waits for, flush() and
close() commit at once. LiteLLM's proxy batches its spend writes the same way
(proxy_batch_write_at).

With `offload` the commit runs where that puts it, a thread: serve and batch on a database server
(store/offload.py), where it waits on the network, not on the loop; serve on SQLite without a
budget (serve/relay.py, `_commit_apart`), where sqlite3 works beside the loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

MAX_GROUP = 500  # rows per transaction at most: keeps each write lock short


@dataclass
class Item:
    attempt: dict[str, Any] | None  # a ledger row; None for a line that was never sent
    line: dict[str, Any] | None  # the run_lines update for it; None: nothing (a flush)
    done: asyncio.Future[None] | None = None  # set once committed, for whoever waits


@dataclass
class WriterStats:
    transactions: int = 0
    attempts: int = 0
    lines: int = 0
    largest: int = 0  # items in the biggest transaction


class GroupWriter:
    def __init__(self, commit: Callable[[list[dict[str, Any]], list[dict[str, Any]]], None],
                 on_commit: Callable[[list[Item]], None] | None = None, *, linger: float = 0.0,
                 offload: Callable[..., Awaitable[Any]] | None = None) -> None:
        self._commit = commit
        self._offload = offload
        self._linger = linger
        self._on_commit = on_commit
        self._queue: asyncio.Queue[Item | None] = asyncio.Queue()
        self.stats = WriterStats()
        self.error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Future[None] | None = None  # ends a linger early
        self._hurry = False  # a row someone waits for, or close(), is queued: no linger

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def put(self, item: Item, *, wait: bool) -> None:
        """Queue a result; with wait, return only once it is committed (or raise why not)."""
        if self.error is not None:
            raise self.error
        if wait:
            item.done = asyncio.get_running_loop().create_future()
            self._hurry = True  # a row someone waits for cuts the linger short
            _settle(self._wake)
        self._queue.put_nowait(item)
        if item.done is not None:
            await item.done

    async def flush(self) -> None:
        """Commit what is lingering now, so a reader of the ledger sees every row put so far."""
        if self._linger > 0 and self._task is not None and not self._task.done():  # once closed, nothing waits
            await self.put(Item(None, None), wait=True)

    def put_nowait(self, item: Item) -> None:
        self._queue.put_nowait(item)

    async def close(self) -> None:
        """Commit everything queued, then stop."""
        self._queue.put_nowait(None)
        self._hurry = True
        _settle(self._wake)
        if self._task is not None:
            await self._task
        if self.error is not None:
            raise self.error

    async def _run(self) -> None:
        stop = False
        while not stop:
            first = await self._queue.get()
            if first is None:
                break
            group, stop = await self._gather(first)
            await self._write(group)
            await asyncio.sleep(0)  # let the waiters run before the next group

    async def _gather(self, first: Item) -> tuple[list[Item], bool]:
        """The group to commit with first, and whether close() was asked for meanwhile."""
        if self._linger > 0 and first.done is None:
            await self._linger_on()
        group = [first]
        while len(group) < MAX_GROUP and not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None:
                return group, True
            group.append(item)
        self._hurry = not self._queue.empty()  # what is left may hold a row someone waits for
        return group, False

    async def _linger_on(self) -> None:
        """Wait out the linger, or less if a row someone waits for (or close()) comes in: one
        timer per group, where waking for every row that came in cost serve a task step and a
        timer each."""
        if self._hurry:  # queued before this linger began
            return
        loop = asyncio.get_running_loop()
        self._wake = wake = loop.create_future()
        timer = loop.call_at(loop.time() + self._linger, _settle, wake)
        try:
            await wake
        finally:
            timer.cancel()
            self._wake = None

    async def _write(self, group: list[Item]) -> None:
        attempts = [item.attempt for item in group if item.attempt is not None]
        lines = [item.line for item in group if item.line is not None]
        if self.error is None and (attempts or lines):
            try:
                if self._offload is None:
                    self._commit(attempts, lines)
                else:
                    await self._offload(self._commit, attempts, lines)
            except Exception as exc:  # the ledger refused: the run stops, every waiter hears why
                self.error = exc
        for item in group:
            if item.done is not None and not item.done.done():
                if self.error is not None:
                    item.done.set_exception(self.error)
                else:
                    item.done.set_result(None)
        if self.error is None and (attempts or lines):
            self.stats.transactions += 1
            self.stats.attempts += len(attempts)
            self.stats.lines += len(lines)
            self.stats.largest = max(self.stats.largest, len(lines) or len(attempts))
            if self._on_commit is not None:
                self._on_commit(group)


def _settle(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)
