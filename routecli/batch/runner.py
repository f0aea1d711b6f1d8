"""The async runner: one task per line, at most `concurrency` at once, each holding its slot
until its result is committed.

That last rule is what makes a kill safe: "sent but not yet recorded" is never more than
the concurrency, so a resume re-sends at most that many lines, and never one whose
answer is in the ledger. Retries, rate limits and Ctrl-C live here too.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Iterable

from routecli.analytics.ab_store import running_tests as running_ab_tests
from routecli.batch.ratelimit import Limiter, estimate_tokens
from routecli.batch.tally import Tally
from routecli.batch.writer import GroupWriter, Item
from routecli.engine import Engine, base_row, mark_failed, priced, refuse_tools
from routecli.domain import Decision, ModelRef
from routecli.errors import ProviderError, RoutecliError, redact
from routecli.flow import BudgetRefused, Journey, Policy, mark_skipped, refusal
from routecli.inputs import InputLine
from routecli.pricing import PriceMemo
from routecli.store import new_id
from routecli.store.budgets import RowHolds
from routecli.store.offload import StoreWork, breakers_elsewhere

if TYPE_CHECKING:
    from routecli.config import Config
    from routecli.keys import KeyRing
    from routecli.providers.aio import AsyncHttpProvider
    from routecli.store import Store

RETRYABLE = frozenset({"rate_limit", "server", "timeout", "connection", "stream_cut"})
MAX_BACKOFF = 60.0
SHOWN_BAD_LINES = 20  # on stderr; all of them are in the run's lines


@dataclass
class BatchOptions:
    concurrency: int = 16
    max_retries: int = 4  # after the first attempt
    backoff: float = 1.0  # seconds before the first retry; doubles each time, with jitter
    stream: bool = False
    dry_run: bool = False
    budget: Decimal | None = None  # this run's spending limit, in dollars
    router: str | None = None  # --router, for lines that name none
    use_cache: bool = True
    loop: str = "auto"  # the event loop (routecli/loops.py)



def line_update(line: InputLine, status: str, row: dict[str, Any] | None, *, run_id: str,
                error: tuple[str, str] | None = None, answer: str | None = None) -> dict[str, Any]:
    kind, message = error or (None, None)
    return {"run_id": run_id, "line_no": line.line_no, "line_id": line.id, "status": status,
            "attempts": 1 if row is not None else 0, "attempt_id": row["id"] if row else None,
            "error_kind": kind, "error_message": message, "answer": answer}


def backoff_delay(attempt: int, base: float, retry_after: float | None) -> float:
    """The vendor's Retry-After when it gave one, else exponential; jittered so that
    workers told to wait together do not all come back in the same instant."""
    if retry_after is not None:
        return retry_after + random.uniform(0, min(1.0, retry_after * 0.1))
    delay = min(MAX_BACKOFF, base * 2 ** (attempt - 1))
    return delay / 2 + random.uniform(0, delay / 2)


class Runner:
    def __init__(self, config: Config, keys: KeyRing, store: Store, run_id: str, options: BatchOptions,
                 tally: Tally, *, notify: Callable[[str, str], None], commit: Callable[..., None]) -> None:
        self.config, self.keys, self.store = config, keys, store
        self.run_id, self.options, self.tally = run_id, options, tally
        self.notify = notify  # (kind, text): one line for the person at the terminal; kind error|warning|note
        self.engine = Engine(config, None, keys)  # for decide() only: the writer records
        self.engine.router = options.router
        self.engine.ab = running_ab_tests(store)  # A/B hook: a store-less engine is handed the running tests
        # the phase-2 judge is a sync call with its own ledger rows: it runs in a worker thread
        self.judge = Engine(config, store, keys) if config.judge.enabled and not options.dry_run else None
        self.price_of = PriceMemo(config)
        from routecli.guard.gate import Gate

        self.gate = Gate(config, store, run_id=run_id, run_budget=options.budget, use_cache=options.use_cache)
        self.flow = Policy(config, keys, self.gate, self.engine._window_of)
        # on a database server the store work runs on threads (store/offload.py), not on the loop
        self._store = StoreWork(store)
        self._holds = RowHolds()
        self.writer = GroupWriter(lambda attempts, lines: commit(attempts, lines, self._holds.freeing(attempts)),
                                  on_commit=self._committed, offload=self._store if self._store.threaded else None)
        self.interrupted = False
        self._stop = asyncio.Event()
        self._slots = asyncio.Semaphore(options.concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._crashed: list[BaseException] = []
        self._providers: dict[str, AsyncHttpProvider] = {}
        self._limiters: dict[str, Limiter] = {}
        self._secrets = keys.secrets()
        self._said: set[str] = set()
        self._bad_shown = 0

    async def run(self, lines: Iterable[InputLine], skip: set[int]) -> None:
        loop = asyncio.get_running_loop()
        self.writer.start()
        reloader = breakers_elsewhere(self.gate, self._store)
        handled = self._catch_signals(loop)
        try:
            await self._feed(loop, lines, skip)
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            for signum in handled:
                loop.remove_signal_handler(signum)
            if reloader is not None:
                reloader.cancel()
            try:
                await self.writer.close()  # raises the ledger's error, if it had one
            finally:
                self._store.close()
            await self._close_clients()
            if self.judge is not None:
                self.judge.close()
        if self._crashed:
            raise self._crashed[0]

    async def _feed(self, loop: asyncio.AbstractEventLoop, lines: Iterable[InputLine], skip: set[int]) -> None:
        for count, line in enumerate(lines):
            if line.line_no in skip:
                if count % 1000 == 999:
                    await asyncio.sleep(0)  # a long run of finished lines must not starve the requests in flight
                continue
            await self._slots.acquire()
            if self._stop.is_set() or self.writer.error is not None or self._crashed:
                self._slots.release()
                return
            task = loop.create_task(self._line(line))
            self._tasks.add(task)
            task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            if error is not self.writer.error:
                self._crashed.append(error)  # a bug, not a line's failure: stop feeding, report it
            self._stop.set()

    def interrupt(self) -> None:
        """First Ctrl-C: send nothing new, let requests in flight finish and be recorded. Second: abandon them."""
        if not self.interrupted:
            self.interrupted = True
            self._stop.set()
            self.notify("note", f"stopping: waiting for {len(self._tasks)} requests in flight to be answered "
                                "and recorded (Ctrl-C again abandons them)")
            return
        for task in list(self._tasks):
            task.cancel()

    def _catch_signals(self, loop: asyncio.AbstractEventLoop) -> list[int]:
        handled = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, self.interrupt)
                handled.append(signum)
            except (ValueError, RuntimeError, NotImplementedError):  # not the main thread, or not Unix
                pass
        return handled

    def _committed(self, group: list[Item]) -> None:
        for item in group:
            self.tally.add(item)

    # ------------------------------------------------------------ one line

    async def _line(self, line: InputLine) -> None:
        try:
            await self._handle(line)
        finally:
            self._slots.release()  # only now: the line's result is committed (or the run is stopping)

    async def _handle(self, line: InputLine) -> None:
        if line.request is None:
            return await self._invalid(line, line.error or f"line {line.line_no}: unusable")
        try:
            decision = self.engine.decide(line.request, dry_run=self.options.dry_run)
            if not self.options.dry_run:
                refuse_tools(line.request)
        except RoutecliError as exc:
            return await self._invalid(line, f"line {line.line_no}: {exc}")
        if self.options.dry_run:
            row = base_row(line.request, decision, self.config, "batch", self.run_id)
            return await self.writer.put(Item(row, line_update(line, "dry-run", row, run_id=self.run_id)), wait=True)
        request_id = new_id()
        if self.judge is not None:
            decision = await asyncio.to_thread(self.judge.judge, line.request, decision, request_id)
        await self._send(line, decision, request_id)

    async def _invalid(self, line: InputLine, message: str) -> None:
        message = redact(message, self._secrets)
        if self._bad_shown < SHOWN_BAD_LINES:
            self.notify("error", message)
        elif self._bad_shown == SHOWN_BAD_LINES:
            self.notify("error", f"more bad lines; `routecli runs show {self.run_id}` lists them all")
        self._bad_shown += 1
        update = line_update(line, "invalid", None, run_id=self.run_id, error=("invalid", message))
        await self.writer.put(Item(None, update), wait=True)

    async def _send(self, line: InputLine, decision: Decision, request_id: str) -> None:
        """The line's journey: its model (with retries), then fallbacks or one escalation."""
        from routecli.routing.choose import fallback_chain

        assert line.request is not None
        journey = Journey(line.request, request_id, "batch", self.run_id,
                          lambda: fallback_chain(decision, line.request, self.config, self.keys.has,
                                                 self.engine._window_of))
        next_decision: Decision | None = decision
        while next_decision is not None:
            journey.attempts += 1
            next_decision = await self._one_model(line, next_decision, journey)

    async def _one_model(self, line: InputLine, decision: Decision, journey: Journey) -> Decision | None:
        """Try one model; the next model to try, or None when the line is settled."""
        admitted, note = self.flow.admit(journey, decision.model)
        if not admitted:
            row = self._row(journey, decision)
            mark_skipped(row, "open_circuit", note)
            nxt = self.flow.next_model(journey, decision, row["id"], "open_circuit")
            await self._put(line, row, "pending" if nxt else "error", ("open_circuit", note))
            return nxt
        try:
            decision, journey.hold = await self._reserve(journey, decision)
        except BudgetRefused as refused:
            mark_skipped(refused.row, "budget", refused.message)
            self._say_once(refused.message)
            await self._put(line, refused.row, "error", ("budget", refused.message))
            return None
        try:
            key = self.gate.cache_key(line.request, decision.model)
            hit = None if key is None else await self._store(self.gate.cached, key)
            if hit is not None:
                row = self._row(journey, decision)
                self.flow.fill_from_cache(row, decision, hit)
                self._hand_hold(row, journey)
                await self._put(line, row, "ok", answer=hit.answer)
                return None
            return await self._call(line, decision, journey, key)
        finally:
            if journey.hold is not None:  # no row took it (the run is stopping)
                hold, journey.hold = journey.hold, None
                await self._store(self.gate.release, hold)

    def _hand_hold(self, row: dict[str, Any], journey: Journey) -> None:
        """The model's last row for this line frees its budget hold when it is committed."""
        if self.writer.error is None:
            self._holds.hand(row["id"], journey)

    async def _reserve(self, journey: Journey, decision: Decision) -> tuple[Decision, Any]:
        """flow.reserve; a hold made for a line cancelled meanwhile (a second Ctrl-C) is freed."""
        if not self.gate.budgeted:
            return self.flow.reserve(journey, decision)

        def free_unused(reserved: tuple[Decision, Any]) -> None:
            if reserved[1] is not None:
                self._store.behind(self.gate.release, reserved[1])

        return await self._store(self.flow.reserve, journey, decision, if_abandoned=free_unused)

    async def _call(self, line: InputLine, decision: Decision, journey: Journey, key: Any) -> Decision | None:
        request = line.request
        assert request is not None
        name = decision.model.provider
        provider, limiter = self._provider(name), self._limiter(name)
        tokens = estimate_tokens(request)
        for attempt in range(1, self.options.max_retries + 2):
            if not await limiter.acquire(tokens, self._stop):
                return None  # stopping: this attempt was never sent
            row = self._row(journey, decision, retry=attempt > 1)
            started = time.perf_counter()
            try:
                reply = await provider.complete(request, decision.model.model, stream=self.options.stream)
                refusal(reply, decision)
            except ProviderError as exc:
                limiter.settle(tokens, None)
                verdict = await self._failed(line, row, exc, attempt, started, limiter, journey, decision)
                if verdict == "retry":
                    continue
                return verdict if isinstance(verdict, Decision) else None
            except asyncio.CancelledError:  # a second Ctrl-C: the call may have been billed, so record it
                mark_failed(row, "interrupted", "abandoned by a second Ctrl-C", _ms(started), "", self.config)
                self.writer.put_nowait(Item(row, line_update(line, "pending", row, run_id=self.run_id,
                                                             error=("interrupted", row["error_message"]))))
                raise
            limiter.settle(tokens, reply.usage)
            return await self._answered(line, decision, journey, row, reply, key)
        return None

    async def _answered(self, line: InputLine, decision: Decision, journey: Journey, row: dict[str, Any],
                        reply: Any, key: Any) -> Decision | None:
        outcome = priced(row, decision, reply, self.config, self.price_of)
        for warning in outcome.warnings:
            self._say_once(warning)
        self.flow.assess(journey, row, outcome)
        await self._store(self.gate.report, decision.model, None)
        nxt = self.flow.escalation(journey, decision, outcome)
        kept = None if self.config.save_text else reply.text  # for the output file until the run is done
        self._hand_hold(row, journey)
        if nxt is not None:
            journey.weak = (row, kept)
            await self._put(line, row, "pending", answer=kept)
        else:
            await self._put(line, row, "ok", answer=kept)
        if key is not None:
            await self._store(self.gate.remember, key, decision.model, reply, row["id"], row.get("cost_micros"))
        return nxt

    async def _failed(self, line: InputLine, row: dict[str, Any], exc: ProviderError, attempt: int,
                      started: float, limiter: Limiter, journey: Journey, decision: Decision) -> Any:
        """Record a failed attempt; "retry" (after the wait), the fallback Decision, or None when done."""
        message = redact(str(exc), self._secrets)
        mark_failed(row, exc.kind, message, _ms(started), "", self.config)
        retry = exc.kind in RETRYABLE and attempt <= self.options.max_retries and not self._stop.is_set()
        nxt = None if retry or self._stop.is_set() else self.flow.next_model(journey, decision, row["id"], exc.kind)
        if journey.step == "escalation" and journey.weak is not None and not retry:
            return await self._keep_weak(line, row, journey, exc.kind)
        status = "pending" if retry or nxt is not None else "error"
        if not retry:
            self._hand_hold(row, journey)
        await self._put(line, row, status, (exc.kind, message), record_breaker=(decision.model, exc.kind))
        if not retry:
            return nxt
        delay = backoff_delay(attempt, self.options.backoff, exc.retry_after)
        if exc.kind == "rate_limit":
            limiter.pause(delay)  # the whole provider waits, not just this line
        try:
            await asyncio.wait_for(self._stop.wait(), delay)
            return None  # stopping during the wait
        except asyncio.TimeoutError:
            return "retry"

    async def _keep_weak(self, line: InputLine, row: dict[str, Any], journey: Journey, kind: str) -> None:
        """The escalation failed: the first answer stands, and the line points at it."""
        weak_row, kept = journey.weak  # type: ignore[misc]
        update = line_update(line, "ok", weak_row, run_id=self.run_id, answer=kept)
        update.update(error_kind=None, error_message=None)
        self._hand_hold(row, journey)
        await self.writer.put(Item(row, update), wait=True)
        await self._store(self.gate.report, ModelRef(row["provider"], row["model"]), kind)

    async def _put(self, line: InputLine, row: dict[str, Any], status: str, error: tuple[str, str] | None = None,
                   *, answer: str | None = None, record_breaker: tuple[ModelRef, str] | None = None) -> None:
        await self.writer.put(Item(row, line_update(line, status, row, run_id=self.run_id, error=error,
                                                    answer=answer)), wait=True)
        if record_breaker is not None:  # after the commit: the breaker reads the failure rate from the ledger
            await self._store(self.gate.report, *record_breaker)

    def _row(self, journey: Journey, decision: Decision, *, retry: bool = False) -> dict[str, Any]:
        row = self.flow.row(journey, decision)
        if retry:
            row["step"] = "retry"
        return row

    def _say_once(self, warning: str) -> None:
        if warning not in self._said:  # e.g. an unknown price: once per model, not once per line
            self._said.add(warning)
            self.notify("warning", warning)

    def _provider(self, name: str) -> AsyncHttpProvider:
        if name not in self._providers:
            from routecli.providers.aio import get_async_provider, make_async_client

            cfg = self.config.provider(name)
            client = make_async_client(cfg, self.options.concurrency)
            self._providers[name] = get_async_provider(
                cfg, api_key=self.keys.require(name), client=client, default_max_tokens=self.config.default_max_tokens
            )
        return self._providers[name]

    def _limiter(self, name: str) -> Limiter:
        if name not in self._limiters:
            cfg = self.config.provider(name)
            self._limiters[name] = Limiter(cfg.rpm, cfg.tpm)
        return self._limiters[name]

    async def _close_clients(self) -> None:
        for provider in self._providers.values():
            await provider.client.aclose()


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
