"""A circuit breaker per model: closed -> open after repeated failures -> half-open probe -> closed.

Pure transitions; the state itself lives in the store's `breakers` table so every routecli
process sees the same one. Only failures that say something about the model's health count:
a wrong key or a too-long prompt is the request's problem, not the model's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from routecli.config_guards import BreakerConfig

COUNTED = frozenset({"server", "timeout", "connection", "stream_cut", "rate_limit", "malformed"})
CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True, slots=True)
class BreakerState:
    target: str  # "provider:model"
    state: str = CLOSED
    consecutive: int = 0  # failures in a row
    opened_at: datetime | None = None
    probe_at: datetime | None = None  # when the one half-open probe was let through
    last_error: str | None = None
    window_calls: int = 0  # evidence when it last opened or failed
    window_failures: int = 0


def admits(state: BreakerState, config: BreakerConfig, now: datetime) -> str:
    """'yes' (closed), 'probe' (this caller may try once), or 'no' (open, skip the model)."""
    if state.state == CLOSED:
        return "yes"
    cooldown = timedelta(seconds=config.cooldown)
    if state.state == OPEN and state.opened_at is not None and now - state.opened_at >= cooldown:
        return "probe"
    # a probe that never reported back (its process died) must not keep the model shut for good
    if state.state == HALF_OPEN and state.probe_at is not None and now - state.probe_at >= 4 * cooldown:
        return "probe"
    return "no"


def after_failure(state: BreakerState, config: BreakerConfig, now: datetime, kind: str,
                  window_calls: int, window_failures: int) -> BreakerState:
    """The state after a counted failure; window_* come from the ledger (this failure included)."""
    consecutive = state.consecutive + 1
    rate_tripped = window_calls >= config.min_calls and window_failures / window_calls >= config.failure_rate
    trips = state.state == HALF_OPEN or consecutive >= config.failures or rate_tripped
    opened = now if trips and state.state != OPEN else state.opened_at
    return BreakerState(state.target, OPEN if trips or state.state == OPEN else CLOSED, consecutive,
                        opened, None, kind, window_calls, window_failures)


def describe(state: BreakerState, config: BreakerConfig, now: datetime) -> str:
    if state.state == CLOSED:
        return "closed" + (f" ({state.consecutive} failures in a row)" if state.consecutive else "")
    if state.state == HALF_OPEN:
        return "half-open (a probe call is deciding)"
    left = config.cooldown - (now - state.opened_at).total_seconds() if state.opened_at else 0
    why = f"{state.consecutive} failures in a row, last {state.last_error}"
    return f"open ({why}; probe in {max(0, round(left))} s)"
