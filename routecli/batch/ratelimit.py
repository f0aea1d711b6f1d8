"""Per-provider request and token budgets, so a large batch stays under the vendor's limits.

Token buckets refilled continuously and holding one second's worth: a batch starts at
the configured pace instead of spending a whole minute's budget in its first second,
which is what sets off 429 storms. Token use is estimated before a call and corrected
with the real usage after it. A 429 pauses every request to that provider.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable

from routecli.domain import Request, Usage

CHARS_PER_TOKEN = 4  # rough for English; the estimate is corrected once the usage is known


class Bucket:
    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)  # one second's worth
        self.level = self.capacity
        self._clock = clock
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        self.level = min(self.capacity, self.level + (now - self._at) * self.rate)
        self._at = now

    def wait_for(self, amount: float) -> float:
        """Seconds until `amount` can be taken (one larger than the bucket waits for a full one)."""
        self._refill()
        missing = min(amount, self.capacity) - self.level
        return max(0.0, missing / self.rate)

    def take(self, amount: float) -> None:
        self._refill()
        self.level -= amount  # may go below zero: later takers wait until it is paid back

    def give(self, amount: float) -> None:
        self._refill()
        self.level = min(self.capacity, self.level + amount)


def estimate_tokens(request: Request) -> int:
    answer = request.max_tokens or 0
    return len(request.all_text()) // CHARS_PER_TOKEN + answer + 1


class Limiter:
    """One provider's limits; with neither rpm nor tpm set it only honours 429 pauses."""

    def __init__(self, rpm: int | None, tpm: int | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.requests = Bucket(rpm, clock) if rpm else None
        self.tokens = Bucket(tpm, clock) if tpm else None
        self._clock = clock
        self.paused_until = 0.0

    def delay(self, tokens: int) -> float:
        waits = [self.paused_until - self._clock()]
        if self.requests:
            waits.append(self.requests.wait_for(1))
        if self.tokens:
            waits.append(self.tokens.wait_for(tokens))
        return max(0.0, *waits)

    async def acquire(self, tokens: int, stop: asyncio.Event) -> bool:
        """Wait for room to send; False when `stop` was set first (send nothing then)."""
        while True:
            wait = self.delay(tokens)
            if wait <= 0:
                break
            try:
                await asyncio.wait_for(stop.wait(), wait)
                return False
            except asyncio.TimeoutError:
                pass
        if stop.is_set():
            return False
        if self.requests:
            self.requests.take(1)
        if self.tokens:
            self.tokens.take(tokens)
        return True

    def settle(self, estimated: int, usage: Usage | None) -> None:
        """Correct the token bucket with what the call really used (nothing, if it failed)."""
        if self.tokens is None:
            return
        used = (usage.input_tokens + usage.output_tokens) if usage else 0
        if used > estimated:
            self.tokens.take(used - estimated)
        else:
            self.tokens.give(estimated - used)

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, self._clock() + seconds)
