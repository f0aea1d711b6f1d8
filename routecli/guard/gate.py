"""The guards' store-bound half, shared by `ask`, `batch` and `serve`: breakers, budgets, cache.

Every method is a few quick statements against the ledger database, so other routecli
processes using the same ledger see the same breakers, spend and cached answers.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable

from routecli.config import Config
from routecli.domain import ModelRef, Reply, Request
from routecli.guard.breaker import CLOSED, BreakerState, admits, describe
from routecli.guard.cache import cache_key as exact_key, cacheable
from routecli.guard.similar import scope

if TYPE_CHECKING:
    from routecli.store import Store
    from routecli.store.budgets import Hold, Reservation
    from routecli.store.response_cache import CachedAnswer

@dataclass(frozen=True, slots=True)
class CacheKey:
    exact: str  # the exact cache's key
    scope: str | None  # the similarity cache's scope; None when it is off or the request is not a candidate
    prompt: str  # the last user message, compared by similarity


BREAKER_TTL = 1.0  # seconds a process trusts its copy of the breakers before reading them again


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _ledger_errors(method: Callable) -> Callable:
    """A database error in a guard's store call becomes one line that names the fix (StoreError)
    instead of a traceback: serve answers it as an error (a PostgreSQL ledger that went away had
    dropped the client's connection), batch and ask stop with it."""

    @functools.wraps(method)
    def guarded(self: Gate, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            from sqlalchemy.exc import SQLAlchemyError  # only once something failed: not on start-up's path

            if not isinstance(exc, SQLAlchemyError):
                raise
            from routecli.errors import StoreError
            from routecli.store.engine import reason

            raise StoreError(f"Cannot use the ledger at {self.store.location}: {reason(exc)}; check the "
                             "database (is it up and reachable?) and --db / ROUTECLI_DB") from None

    return guarded


class Gate:
    def __init__(self, config: Config, store: Store, *, run_id: str | None = None,
                 run_budget: Decimal | None = None, use_cache: bool = True,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.config, self.store = config, store
        self.run_id, self.run_budget = run_id, run_budget
        self.use_cache = use_cache and config.guards.cache.enabled
        self.clock = clock
        self._breakers: dict[str, BreakerState] = {}
        self._breakers_read = float("-inf")  # when the copy was read (monotonic)
        self._breakers_changed = float("-inf")  # when this process last changed a breaker
        # serve on a database server re-reads the breakers on a thread of its own (serve/relay.py):
        # a request then never waits for that read, and uses the copy it has meanwhile
        self.reload_elsewhere = False

    # ------------------------------------------------------------ circuit breakers

    @_ledger_errors
    def admit(self, ref: ModelRef) -> tuple[bool, str]:
        """(may we call it, a note when not or when this call is the probe)."""
        settings = self.config.guards.breaker
        if not settings.enabled:
            return True, ""
        state = self._breaker(str(ref))
        if state.state == CLOSED:  # the usual case, decided without reading the clock
            return True, ""
        now = self.clock()
        verdict = admits(state, settings, now)
        if verdict == "yes":
            return True, ""
        from routecli.store import breakers

        if verdict == "probe" and breakers.claim_probe(self.store, state, now):
            self._breakers_changed = time.monotonic()
            return True, f"{ref}: circuit half-open, this call is the probe"
        return False, f"skipped {ref}: circuit {describe(state, settings, now)}"

    @_ledger_errors
    def report(self, ref: ModelRef, kind: str | None) -> str:
        """Record a call's result with the breaker; a note when the breaker changed."""
        if not self.config.guards.breaker.enabled:
            return ""
        target = str(ref)
        known = self._breaker(target)
        if kind is None and known.state == CLOSED and not known.consecutive:
            return ""  # the usual case: a healthy model stays healthy, nothing to write
        from routecli.store import breakers

        new = breakers.report(self.store, target, kind, self.config.guards.breaker, self.clock())
        self._breakers_changed = time.monotonic()
        if new is None or new.state == known.state:
            return ""
        return f"{target}: circuit {new.state}" + (f" after {new.consecutive} failures" if kind else "")

    def _breaker(self, target: str) -> BreakerState:
        if not self.reload_elsewhere and self.breakers_due(BREAKER_TTL):
            self.reload_breakers()
        return self._breakers.get(target) or BreakerState(target)

    def breakers_due(self, age: float) -> bool:
        """Whether the copy of the breakers is older than `age` seconds (or was marked stale by a change)."""
        read = self._breakers_read
        return self.config.guards.breaker.enabled and (time.monotonic() - read > age or self._breakers_changed >= read)

    def reload_breakers(self) -> None:
        from routecli.store import breakers

        started = time.monotonic()
        self._breakers = breakers.load(self.store)
        self._breakers_read = started

    # ------------------------------------------------------------ budgets

    @property
    def budgeted(self) -> bool:
        return self.config.guards.budgets.active or self.run_budget is not None

    @_ledger_errors
    def reserve(self, request: Request, ref: ModelRef) -> Reservation | None:
        """Hold the call's worst case on every limit it falls under. None: nothing to hold
        (no limit applies, or the model is free); a Reservation with `refused` set: no room."""
        if not self.budgeted:
            return None
        from routecli.guard.budget import scopes, to_micros, worst_case_usage
        from routecli.pricing import price
        from routecli.store import budgets

        now = self.clock()
        applicable = scopes(request, self.config.guards.budgets, now, run_id=self.run_id, run_budget=self.run_budget)
        if not applicable:
            return None
        worst = price(worst_case_usage(request, self.config.default_max_tokens), ref, self.config).cost
        if worst == 0:
            return None  # free (local) models are never blocked by a budget
        if worst is None:  # an unknown price cannot be bounded: no room under any limit
            micros = applicable[0].limit_micros + 1
        else:
            micros = max(1, to_micros(worst))
        return budgets.reserve(self.store, applicable, micros, now, self.config.guards.budgets.warn_share)

    @_ledger_errors
    def release(self, hold: Hold | None) -> None:
        if hold is not None:
            from routecli.store import budgets

            budgets.release(self.store, hold)

    # ------------------------------------------------------------ response cache

    def cache_key(self, request: Request, ref: ModelRef) -> CacheKey | None:
        if not self.use_cache:
            return None
        if not cacheable(request):
            return None
        settings = self.config.guards.cache
        near = scope(request, ref, self.config.default_max_tokens) if settings.similar else None
        return CacheKey(exact_key(request, ref, self.config.default_max_tokens), near, request.last_user_text)

    @_ledger_errors
    def cached(self, key: CacheKey | None) -> CachedAnswer | None:
        """The exact answer, else (opt-in) the answer to a near-identical prompt in the same scope."""
        if key is None:
            return None
        from routecli.store import response_cache

        hit = response_cache.lookup(self.store, key.exact, self.clock())
        if hit is not None or key.scope is None:
            return hit
        from routecli.store import similar_cache

        found = similar_cache.lookup(self.store, key.scope, key.prompt, self.config.guards.cache.similarity,
                                     self.clock())
        return found[0] if found else None

    @_ledger_errors
    def remember(self, key: CacheKey | None, ref: ModelRef, reply: Reply, attempt_id: str,
                 cost_micros: int | None) -> None:
        if key is None or not reply.text.strip() or reply.finish_reason in ("length", "max_tokens", "MAX_TOKENS"):
            return  # an empty or cut-off answer is not worth repeating
        from routecli.store import response_cache

        settings, now = self.config.guards.cache, self.clock()
        response_cache.save(self.store, key.exact, ref, reply.text, reply.usage, attempt_id, cost_micros, now,
                            settings.ttl, settings.max_entries)
        if key.scope is not None:
            from routecli.store import similar_cache

            similar_cache.save(self.store, key.scope, ref, key.prompt, reply.text, reply.usage, attempt_id,
                               cost_micros, now, settings.ttl, settings.max_entries)
