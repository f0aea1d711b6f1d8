"""Calls that threads make at the same moment, done together in one transaction (flat combining).

On a PostgreSQL ledger every write transaction takes the one write lock (engine._configure_postgres)
and, across a network, costs a round trip per statement while it holds it. serve and batch reserve
budget holds on threads there (store/offload.py), and one transaction per hold queued them all behind
each other. Here a thread that finds others waiting takes their calls into its own transaction, in
the order they came, with the same checks as one at a time; a caller on its own (ask, anything on
SQLite) is a group of one and sees no difference. benchmarks/serve_ledger.py measures the whole.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Callable, Generic, TypeVar

Ask = TypeVar("Ask")
Result = TypeVar("Result")


class _Slot:
    __slots__ = ("ask", "done", "result", "error")

    def __init__(self, ask: Any) -> None:
        self.ask, self.done, self.result, self.error = ask, False, None, None


class Combiner(Generic[Ask, Result]):
    """`combiner(ask, run_group)` runs `run_group([ask, ...])` with every ask waiting at that moment;
    each caller gets its own result, or the group's error (the transaction is all or nothing)."""

    def __init__(self) -> None:
        self._turn = threading.Lock()  # held by the thread running a group
        self._queue = threading.Lock()  # guards _pending
        self._pending: list[_Slot] = []

    def __call__(self, ask: Ask, run_group: Callable[[list[Ask]], list[Result]]) -> Result:
        slot = _Slot(ask)
        with self._queue:
            self._pending.append(slot)
        with self._turn:
            if not slot.done:  # nobody took it into their group while this thread waited: run one
                with self._queue:
                    group, self._pending = self._pending, []
                _run(group, run_group)
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]


def _run(group: list[_Slot], run_group: Callable[[list[Any]], list[Any]]) -> None:
    try:
        results = run_group([slot.ask for slot in group])
    except BaseException as exc:
        for slot in group:
            slot.error, slot.done = exc, True
        return
    for slot, result in zip(group, results, strict=True):
        slot.result, slot.done = result, True


# owner (a database engine) -> its combiner for each group function; weak, so an engine disposed of
# takes its combiners with it (a group function must not hold the engine: it is given it)
_COMBINERS: weakref.WeakKeyDictionary[Any, dict[Callable, Combiner]] = weakref.WeakKeyDictionary()
_MADE = threading.Lock()


def combined(owner: Any, run_group: Callable[[Any, list[Ask]], list[Result]], ask: Ask) -> Result:
    """`run_group(owner, asks)` for this ask and every other one waiting for the same owner and function."""
    with _MADE:
        found = _COMBINERS.setdefault(owner, {})
        the_combiner = found.get(run_group) or found.setdefault(run_group, Combiner())
    return the_combiner(ask, lambda asks: run_group(owner, asks))
