"""The async driver of a request's journey for `routecli serve`: the same guards as `ask`
(breaker, budget, cache, fallback, escalation; `flow.Policy`), over shared async clients, with
rows committed in groups by the batch runner's GroupWriter so a busy endpoint is not held up
by one transaction per request.

On a database server (a PostgreSQL ledger, team mode) the store work runs on threads
(store/offload.py): the commits, the budget holds, the response cache, the breakers (read again in
the background, so no request waits for them). On SQLite it stays on the loop, but for the commits
when no budget is set (`_commit_apart`).
"""

from __future__ import annotations

import asyncio
import functools
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from routecli.batch.writer import GroupWriter, Item
from routecli.domain import Decision, Reply, Request
from routecli.engine import Engine, Outcome, fill_ok, mark_failed, price_reply, refuse_tools
from routecli.errors import BudgetError, ProviderError, redact
from routecli.flow import BudgetRefused, Journey, Policy, Slot, fill_assessment, mark_skipped, refusal
from routecli.guard.gate import Gate
from routecli.pricing import PriceMemo
from routecli.routing.choose import fallback_chain
from routecli.store.budgets import RowHolds
from routecli.store.offload import StoreWork, breakers_elsewhere
from routecli.store.runs import Committer

if TYPE_CHECKING:
    from routecli.config import Config
    from routecli.keys import KeyRing
    from routecli.providers.aio import AsyncHttpProvider
    from routecli.store import Store
    from routecli.store.budgets import Hold

CONNECTIONS = 256  # per upstream provider
# Work no caller waits for (an answer's ledger row, the request's side of the answer's assessment)
# runs this long after it is asked for rather than at once, so the events of other requests that
# are ready by then go first: 64 clients in process (benchmarks/serve_inprocess.py), serve's added p50
# 1.62-1.63 ms with that work run at once (call_soon), 1.42-1.45 with it put off; 1.76-1.87 with 0 s.
LATER = 0.001  # seconds


class Relay:
    def __init__(self, config: Config, keys: KeyRing, store: Store) -> None:
        self.config, self.keys, self.store = config, keys, store
        self.engine = Engine(config, None, keys)  # decide() only: rows go through the writer
        self.gate = Gate(config, store)
        self.policy = Policy(config, keys, self.gate, self.engine._window_of)
        self.price_of = PriceMemo(config)
        committer = Committer(store, on_fail="; routecli serve takes no more requests: fix the database "
                                             "(disk space, permissions, --db) and restart it")
        self._store = StoreWork(store)
        self._commits: ThreadPoolExecutor | None = None
        self._offload = self._store if self._store.threaded else self._commit_apart(config)
        self._reloader: asyncio.Task[None] | None = None
        self._holds = RowHolds()
        self.writer = GroupWriter(lambda rows, _lines: _say_if_failed(committer, rows, self._holds.freeing(rows)),
                                  linger=config.guards.serve.commit_interval_ms / 1000,
                                  offload=self._offload)
        self._committer = committer
        # The answer goes out first and its row is committed right after, as `llm` logs once the
        # answer is shown and LiteLLM's proxy writes spend in the background: the commit was ~0.6 of
        # the ~2 ms serve added per request (benchmarks/serve_overhead.py). Rows then wait up to
        # serve.commit_interval_ms to share a transaction; rows still queued at shutdown are flushed
        # by close(). Under a budget a call's hold is freed in the transaction that commits its row
        # (and cost), so the limit counts the call's worst case until its real cost replaces it.
        self._providers: dict[str, AsyncHttpProvider] = {}
        self._secrets = keys.secrets()
        self._waiting: dict[object, tuple[asyncio.TimerHandle, Callable[[], None]]] = {}  # see _later()

    def _commit_apart(self, config: Config) -> Callable[..., Awaitable[Any]] | None:
        """On SQLite with no budget, the commits run on one thread of their own. A group of 64 rows
        held the loop ~8 ms; on a thread sqlite3 does its part without the interpreter, beside the
        loop: at 64 clients, p99 +9.2..+21.4 ms -> +5.2..+11.2, p50 the same (A/B runs of
        benchmarks/serve_overhead.py's requests: benchmarks/SERVE_OVERHEAD.md). Under a budget the holds are
        written on the loop, and would wait for that thread's write lock: there it stays on the loop."""
        if config.guards.budgets.active:
            return None
        self._commits = pool = ThreadPoolExecutor(1, thread_name_prefix="routecli-commit")

        async def apart(work: Callable[..., Any], *args: Any) -> Any:
            return await asyncio.get_running_loop().run_in_executor(pool, work, *args)

        return apart

    def start(self) -> None:
        self.writer.start()
        self._reloader = breakers_elsewhere(self.gate, self._store)

    async def flush(self) -> None:
        """Commit every row of an answer already given (and free its budget hold)."""
        self._run_waiting()  # the rows not built yet go in first
        await self.writer.flush()
        await self._store.settle()

    async def close(self) -> None:
        if self._reloader is not None:
            self._reloader.cancel()
        self._run_waiting()  # as in flush()
        await self.writer.close()
        for provider in self._providers.values():
            await provider.client.aclose()
        await (self._offload or _now)(self._committer.close)  # on the thread that opened it
        self._store.close()
        if self._commits is not None:
            self._commits.shutdown(wait=True)

    def warm(self) -> None:
        """Do now what the first request would: load the classifier's weights and the price data,
        open each keyed HTTP provider's client. The first caller is not kept waiting, and the
        server's gc.freeze() then covers all of it."""
        from routecli.domain import Message, Usage
        from routecli.errors import RoutecliError
        from routecli.routing import assess  # noqa: F401  (imported by the first answer's assessment otherwise)

        try:
            decision = self.decide(Request((Message("user", "warm up"),)))
            self.price_of(Usage(1, 1), decision.model)
        except RoutecliError:  # nothing routable yet: each request will say why
            pass
        for name in dict.fromkeys(ref.provider for _, ref in self.config.all_models()):
            if self.config.provider(name).kind != "llamacpp" and self.keys.has(name):
                self._provider(name)

    def decide(self, request: Request) -> Decision:
        decision = self.engine.decide(request)
        refuse_tools(request)
        return decision

    async def answer(self, request: Request, decision: Decision, *, caller: str | None,
                     on_text: Callable[[str], None] | None = None) -> Outcome:
        """Answer through the guards; with on_text the answer streams, and then neither a fallback
        after the first words nor an escalation can replace it."""
        if self.writer.error is not None:  # the ledger stopped taking rows: call nothing it cannot record
            raise self.writer.error

        def chain() -> list:
            return fallback_chain(decision, request, self.config, self.keys.has, self.engine._window_of)

        journey = Journey(request, "", "serve", None, chain, caller=caller)  # its id: see _call
        sent: list[str] = []

        def emit(delta: str) -> None:
            sent.append(delta)
            if on_text:
                on_text(delta)

        step: Outcome | Decision = decision
        while isinstance(step, Decision):
            journey.attempts += 1
            step = await self._attempt(journey, step, emit if on_text else None, sent)
        step.history = journey.history
        return step

    async def _attempt(self, journey: Journey, decision: Decision, emit: Callable[[str], None] | None,
                       sent: list[str]) -> Outcome | Decision:
        admitted, note = self.policy.admit(journey, decision.model)
        if not admitted:
            row = self.policy.row(journey, decision)
            mark_skipped(row, "open_circuit", note)
            await self._record(row)
            nxt = self.policy.next_model(journey, decision, row["id"], "open_circuit")
            if nxt is None:
                raise ProviderError(note, kind="open_circuit", provider=decision.model.provider,
                                    model=decision.model.model)
            return nxt
        try:
            decision, journey.hold = await self._reserve(journey, decision)
        except BudgetRefused as refused:
            mark_skipped(refused.row, "budget", refused.message)
            await self._record(refused.row)
            raise BudgetError(refused.message) from None
        try:
            key = self.gate.cache_key(journey.request, decision.model)
            hit = None if key is None else await self._store(self.gate.cached, key)
            if hit is not None:
                return await self._from_cache(journey, decision, hit, emit)
            return await self._call(journey, decision, key, emit, sent)
        finally:
            if journey.hold is not None:  # no row took it (the call was cut short): freed on its own
                self._in_background(self.gate.release, journey.hold)
                journey.hold = None

    async def _reserve(self, journey: Journey, decision: Decision) -> tuple[Decision, Hold | None]:
        """policy.reserve; a hold made for a caller who has gone meanwhile (its request cancelled
        while it was reserved on a thread) is freed, not left to block the budget until it expires."""
        if not self.gate.budgeted:
            return self.policy.reserve(journey, decision)
        return await self._store(self.policy.reserve, journey, decision, if_abandoned=self._free_unused)

    def _free_unused(self, reserved: tuple[Decision, Hold | None]) -> None:
        if reserved[1] is not None:
            self._in_background(self.gate.release, reserved[1])

    async def _call(self, journey: Journey, decision: Decision, key: Any,
                    emit: Callable[[str], None] | None, sent: list[str]) -> Outcome | Decision:
        ahead: list[Any] = []

        def prepare() -> None:
            """What the answer needs but the call does not: the row's id (the request's, a ULID, on a
            first attempt) and place, and the request's side of the answer's assessment."""
            if not ahead:
                ahead.extend((self.policy.claim(journey), self.policy.expect(journey, decision)))

        # Runs a moment (LATER) after the call below has sent the request, while it waits for the model.
        asyncio.get_running_loop().call_later(LATER, prepare)
        started = time.perf_counter()
        try:
            provider = self._provider(decision.model.provider)
            reply = await provider.complete(journey.request, decision.model.model, stream=emit is not None,
                                            on_text=emit)
            refusal(reply, decision)
        except ProviderError as exc:
            prepare()
            return await self._failed(journey, decision, ahead[0], exc, started, sent)
        prepare()  # nothing to do unless the call never waited
        slot, asked = ahead
        outcome = price_reply(slot.id, decision, reply, self.config, self.price_of)
        self.policy.judge(journey, outcome, asked)
        # the row changes nothing in the answer: it is built and queued once the answer is on its way,
        # and frees the call's budget hold when it is committed
        self._hand_hold(slot.id, journey)
        self._later(functools.partial(self._after_answer, journey, decision, slot, outcome, key))
        escalate = None if emit is not None else self.policy.escalation(journey, decision, outcome)
        if escalate is None:
            return outcome
        journey.weak = outcome
        return escalate

    async def _failed(self, journey: Journey, decision: Decision, slot: Slot, exc: ProviderError, started: float,
                      sent: list[str]) -> Decision | Outcome:
        """Record the failed call; the fallback to try next, the first answer an escalation was to
        replace, or the error (redacted) when there is neither."""
        row = self.policy.row(journey, decision, slot)
        message = redact(str(exc), self._secrets)
        mark_failed(row, exc.kind, message, (time.perf_counter() - started) * 1000, "", self.config)
        await self._record(row, journey)
        await self._store(self.gate.report, decision.model, exc.kind)
        if journey.step == "escalation" and journey.weak is not None:
            journey.history.append(f"escalation failed ({exc.kind}); kept the first answer")
            return journey.weak
        nxt = None if sent else self.policy.next_model(journey, decision, row["id"], exc.kind)
        if nxt is None:
            raise ProviderError(message, kind=exc.kind, provider=exc.provider, model=exc.model,
                                status=exc.status, retry_after=exc.retry_after) from None
        return nxt

    def _ok_row(self, journey: Journey, decision: Decision, slot: Slot, outcome: Outcome) -> dict[str, Any]:
        row = self.policy.row(journey, decision, slot)
        fill_ok(row, outcome, self.config)
        fill_assessment(row, outcome)
        return row

    def _in_background(self, work: Callable[..., None], *args: Any) -> None:
        """Store work no caller waits for: on a thread on a database server, else LATER on the loop;
        flush() waits for it either way."""
        if self._store.threaded:
            self._store.behind(work, *args)
        else:
            self._later(functools.partial(work, *args))

    def _later(self, work: Callable[[], None]) -> None:
        """Do `work` LATER seconds from now; flush() and close() do it at once if it is still waiting."""
        token = object()

        def run() -> None:
            del self._waiting[token]
            work()

        self._waiting[token] = (asyncio.get_running_loop().call_later(LATER, run), run)

    def _run_waiting(self) -> None:
        loop = asyncio.get_running_loop()
        for handle, run in list(self._waiting.values()):
            handle.cancel()
            try:
                run()
            except Exception as exc:  # as the loop treats a failing timer: said, and the others still run
                loop.call_exception_handler({"message": "routecli serve: work after an answer failed",
                                             "exception": exc})

    def _after_answer(self, journey: Journey, decision: Decision, slot: Slot, outcome: Outcome, key: Any) -> None:
        assert outcome.reply is not None
        row = self._ok_row(journey, decision, slot, outcome)
        self.writer.put_nowait(Item(row, {}))
        if key is not None and self._store.threaded:  # a response cache write on a database server
            self._store.behind(self._after_success, row, decision, key, outcome.reply)
        else:  # nothing to write (unless the breaker changes), or on SQLite: already off the answer's path
            self._after_success(row, decision, key, outcome.reply)

    async def _from_cache(self, journey: Journey, decision: Decision, hit: Any,
                          emit: Callable[[str], None] | None) -> Outcome:
        from routecli.pricing import from_micros

        row = self.policy.row(journey, decision)
        baseline = self.policy.fill_from_cache(row, decision, hit)
        await self._record(row, journey)
        if emit:
            emit(hit.answer)
        reply = Reply(hit.answer, hit.usage, decision.model.model, "stop", None, 0.0)
        return Outcome(row["id"], decision, "ok", reply, cost=from_micros(0), baseline_cost=baseline,
                       price_source="cache", cache_kind=hit.kind,
                       saved_cost=None if hit.cost_micros is None else from_micros(hit.cost_micros))

    def _after_success(self, row: dict[str, Any], decision: Decision, key: Any, reply: Reply) -> None:
        """Tell the breaker, fill the response cache (a write to the store when the cache is on)."""
        try:
            self.gate.report(decision.model, None)
            self.gate.remember(key, decision.model, reply, row["id"], row.get("cost_micros"))
        except Exception as exc:  # the answer is already out: say it here, the next request will meet it too
            sys.stderr.write(f"routecli serve: could not update the breaker or the response cache: {exc}; "
                             "check the database (disk space, permissions, --db)\n")

    async def _record(self, row: dict[str, Any], journey: Journey | None = None) -> None:
        """Queue the row; the journey's budget hold, if any, goes with it (see _hand_hold)."""
        if journey is not None:
            self._hand_hold(row["id"], journey)
        await self.writer.put(Item(row, {}), wait=False)

    def _hand_hold(self, row_id: str, journey: Journey) -> None:
        """The journey's budget hold is freed by the transaction that commits this row."""
        if self.writer.error is None:
            self._holds.hand(row_id, journey)

    def _provider(self, name: str) -> AsyncHttpProvider:
        if name not in self._providers:
            from routecli.providers.aio import get_async_provider, make_async_client

            cfg = self.config.provider(name)
            self._providers[name] = get_async_provider(
                cfg, api_key=self.keys.require(name), client=make_async_client(cfg, CONNECTIONS),
                default_max_tokens=self.config.default_max_tokens)
        return self._providers[name]


async def _now(work: Callable[[], Any]) -> Any:
    return work()


def _say_if_failed(committer: Committer, attempts: list[dict[str, Any]], also: Callable[[Any], None] | None) -> None:
    """Commit (and do `also` in the transaction); a failure is also told on serve's stderr, since with the
    answer already sent the caller who would have seen it may be gone (the writer keeps it for every later request)."""
    try:
        committer(attempts, [], also)
    except Exception as exc:
        sys.stderr.write(f"routecli serve: {exc}\n")
        raise
