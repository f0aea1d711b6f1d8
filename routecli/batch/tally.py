"""What a batch session committed, for its progress line and its summary."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

from routecli.batch.writer import Item


@dataclass
class Tally:
    """What this session committed, for progress and the summary."""

    total: int
    skipped: int = 0  # finished in an earlier session
    ok: int = 0
    dry_run: int = 0
    failed: int = 0
    invalid: int = 0
    retried: int = 0  # failed attempts that were retried
    cost: Decimal = Decimal(0)
    unpriced: int = 0
    tiers: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # by kind
    started: float = field(default_factory=time.monotonic)

    @property
    def done(self) -> int:
        return self.skipped + self.ok + self.dry_run + self.failed + self.invalid

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def add(self, item: Item) -> None:
        line, row = item.line, item.attempt or {}
        status = line["status"]
        if status == "pending":
            self.retried += 1
            return
        name = _TALLY_FIELD[status]
        setattr(self, name, getattr(self, name) + 1)
        if status in ("ok", "dry-run"):
            self.tiers[row["tier"]] += 1
        else:
            self.errors[line.get("error_kind") or "unknown"] += 1
        if status == "ok" and row.get("cost_micros") is None:
            self.unpriced += 1
        elif status == "ok":
            self.cost += Decimal(row["cost_micros"]).scaleb(-6)


_TALLY_FIELD = {"ok": "ok", "dry-run": "dry_run", "error": "failed", "invalid": "invalid"}
