"""Budget counters and holds in the store: reserve a call's worst case, release it after.

`spent_micros` per key is created lazily from the ledger (one SUM under the write lock) and
then kept current by every attempt insert (`add_spend`, in the insert's own transaction), so
it never drifts from the ledger whichever process wrote the rows. A hold is what a call in
flight may still cost; a process that dies leaves its holds behind, and they expire.
"""

from __future__ import annotations

import json
import time
import weakref
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable

from sqlalchemy import Connection, bindparam, text

from routecli.guard.budget import Scope, keys_for_row, share_text
from routecli.store.alerts import record_alert
from routecli.store.combine import combined
from routecli.store.engine import write_transaction
from routecli.store.models import new_id, stamp

HOLD_TTL = timedelta(hours=1)  # longer than any call may take; a hold older than this was abandoned
# Abandoned holds are looked for at most this often by a process's reservations: at an hour's age a
# minute more makes no difference, and on a database across a network it is a round trip under the
# write lock that every reservation would otherwise pay (benchmarks/serve_ledger.py).
EXPIRE_EVERY = 60.0  # seconds
_last_expired: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()  # engine -> monotonic time


@dataclass(frozen=True, slots=True)
class Hold:
    id: str
    keys: tuple[str, ...]
    micros: int


@dataclass(frozen=True, slots=True)
class Standing:
    """One limit's state: what was spent, what calls in flight hold, and the limit."""

    scope: Scope
    spent: int
    reserved: int

    @property
    def used(self) -> int:
        return self.spent + self.reserved


@dataclass(frozen=True, slots=True)
class Reservation:
    hold: Hold | None  # None: refused
    refused: Standing | None  # the first limit the call would pass
    warnings: tuple[str, ...]  # limits at or past the warning share


def reserve(store: Any, scopes: list[Scope], micros: int, now: datetime, warn_share: float) -> Reservation:
    """Atomically: check every limit has room for `micros` more, then hold it on all of them.

    Threads reserving at the same moment share one transaction (store/combine.py), each checked
    in turn against the counters as the ones before it left them."""
    return combined(store.engine, _reserve_group, (scopes, micros, now, warn_share))


def release(store: Any, hold: Hold | None) -> None:
    """The call is over (its cost, if any, is in the ledger): free what it held."""
    if hold is not None:
        combined(store.engine, _release_group, hold)


def _reserve_group(engine: Any, asks: list[tuple[list[Scope], int, datetime, float]]) -> list[Reservation]:
    counters: dict[str, list[int]] = {}  # key -> [spent, reserved], as this transaction leaves them
    reservations, held = [], []
    with write_transaction(engine) as conn:
        if time.monotonic() - _last_expired.get(engine, float("-inf")) > EXPIRE_EVERY:
            _expire_holds(conn, max(now for _, _, now, _ in asks))
            _last_expired[engine] = time.monotonic()
        for scopes, micros, now, warn_share in asks:
            standings = [_standing(conn, scope, now, counters) for scope in scopes]
            refused = next((s for s in standings if s.used + micros > s.scope.limit_micros), None)
            if refused is not None:
                reservations.append(Reservation(None, refused, ()))
                continue
            hold = Hold(new_id(), tuple(s.scope.key for s in standings), micros)
            for key in hold.keys:
                counters[key][1] += micros
            held.append((hold, stamp(now)))
            reservations.append(Reservation(hold, None, _warnings(conn, standings, micros, warn_share)))
        if held:
            _hold(conn, held)
    return reservations


def _hold(conn: Connection, held: list[tuple[Hold, str]]) -> None:
    """Write the group's new holds, and add them to their counters (one statement per key)."""
    added: dict[str, int] = defaultdict(int)
    last: dict[str, str] = {}
    for hold, at in held:
        for key in hold.keys:
            added[key] += hold.micros
            last[key] = at
    conn.execute(text("UPDATE budget_spend SET reserved_micros = reserved_micros + :m, updated_at = :at "
                      "WHERE key = :key"),
                 [{"m": micros, "at": last[key], "key": key} for key, micros in added.items()])
    conn.execute(text("INSERT INTO budget_holds (id, keys, micros, created_at) VALUES (:id, :keys, :m, :at)"),
                 [{"id": hold.id, "keys": json.dumps(hold.keys), "m": hold.micros, "at": at} for hold, at in held])


def _release_group(engine: Any, holds: list[Hold]) -> list[None]:
    with write_transaction(engine) as conn:
        drop_holds(conn, holds)
    return [None] * len(holds)


class RowHolds:
    """Budget holds handed to ledger rows, each freed by the transaction that commits its row (serve,
    batch): the call's cost replaces its worst case at once, and it is one write a call fewer."""

    def __init__(self) -> None:
        self._by_row: dict[str, Hold] = {}

    def hand(self, row_id: str, journey: Any) -> None:
        """Give the journey's hold, if any, to this row: the journey no longer frees it itself."""
        if journey.hold is not None:
            self._by_row[row_id] = journey.hold
            journey.hold = None

    def freeing(self, rows: list[dict[str, Any]]) -> Callable[[Connection], None] | None:
        """What the commit of these rows does besides (for Committer's `also`), or None."""
        holds = [hold for row in rows if (hold := self._by_row.pop(row["id"], None)) is not None]
        return (lambda conn: drop_holds(conn, holds)) if holds else None


def standings(store: Any, scopes: list[Scope], now: datetime) -> list[Standing]:
    """Each limit's spend now (creating counters as needed): what `routecli budget` shows."""
    with write_transaction(store.engine) as conn:
        _expire_holds(conn, now)
        return [_standing(conn, scope, now) for scope in scopes]


def add_spend(conn: Connection, rows: Iterable[dict[str, Any]]) -> None:
    """Add the rows' costs to every counter that exists; call inside the rows' insert transaction."""
    totals: dict[str, int] = defaultdict(int)
    for row in rows:
        cost = row.get("cost_micros")
        if cost:
            created = row["created_at"]
            created = created if isinstance(created, str) else stamp(created)
            for key in keys_for_row(row, created):
                totals[key] += cost
    if totals:
        conn.execute(text("UPDATE budget_spend SET spent_micros = spent_micros + :m WHERE key = :key"),
                     [{"m": micros, "key": key} for key, micros in totals.items()])


def _standing(conn: Connection, scope: Scope, now: datetime, counters: dict[str, list[int]] | None = None) -> Standing:
    """The scope's counter (created from the ledger if it has none yet); `counters` keeps what this
    transaction read and changed, so a key is read once however many calls it holds for."""
    known = None if counters is None else counters.get(scope.key)
    if known is None:
        known = _read_counter(conn, scope, now)
        if counters is not None:
            counters[scope.key] = known
    return Standing(scope, known[0], known[1])


def _read_counter(conn: Connection, scope: Scope, now: datetime) -> list[int]:
    row = conn.execute(text("SELECT spent_micros, reserved_micros FROM budget_spend WHERE key = :key"),
                       {"key": scope.key}).first()
    if row is None:
        spent = _ledger_spend(conn, scope)
        conn.execute(text("INSERT INTO budget_spend (key, spent_micros, reserved_micros, updated_at) "
                          "VALUES (:key, :spent, 0, :at)"), {"key": scope.key, "spent": spent, "at": stamp(now)})
        return [spent, 0]
    return [int(row.spent_micros), int(row.reserved_micros)]


def _ledger_spend(conn: Connection, scope: Scope) -> int:
    """What the ledger says this scope has spent so far (the counter's starting value)."""
    where, params = ["cost_micros IS NOT NULL"], {}
    if scope.start:
        where.append("{time} >= :start")
        params["start"] = scope.start
    if scope.agent:
        where.append("agent = :agent")
        params["agent"] = scope.agent
    if scope.tag:
        # tags is a JSON list, stored as UTF-8 (store/models.py); a tag's quoted form is unambiguous inside it
        where.append("tags LIKE :tag ESCAPE '\\'")
        escaped = json.dumps(scope.tag, ensure_ascii=False).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params["tag"] = f"%{escaped}%"
    if scope.run_id:
        where.append("run_id = :run")
        params["run"] = scope.run_id
    condition = " AND ".join(where)
    live = f"SELECT COALESCE(SUM(cost_micros), 0) FROM attempts WHERE {condition.format(time='created_at')}"
    # what `db prune` removed still counts: its sums are kept per day in pruned_totals
    pruned = f"SELECT COALESCE(SUM(cost_micros), 0) FROM pruned_totals WHERE {condition.format(time='day')}"
    params_pruned = {**params, "start": params["start"][:10]} if "start" in params else params
    return int(conn.execute(text(live), params).scalar_one()) + int(conn.execute(text(pruned), params_pruned).scalar_one())


def _expire_holds(conn: Connection, now: datetime) -> None:
    stale = conn.execute(text("SELECT id, keys, micros FROM budget_holds WHERE created_at < :cutoff"),
                         {"cutoff": stamp(now - HOLD_TTL)}).all()
    if stale:
        drop_holds(conn, [Hold(row.id, tuple(json.loads(row.keys)), int(row.micros)) for row in stale])


def drop_holds(conn: Connection, holds: list[Hold]) -> None:
    """Delete the holds and take what they held off their counters, in the caller's write transaction
    (serve and batch free a call's hold in the one that commits its row: RowHolds); a hold already gone (expired and
    dropped by another process) is not taken off twice."""
    present = set(conn.execute(text("SELECT id FROM budget_holds WHERE id IN :ids")
                               .bindparams(bindparam("ids", expanding=True)), {"ids": [h.id for h in holds]}).scalars())
    if not present:
        return
    conn.execute(text("DELETE FROM budget_holds WHERE id IN :ids").bindparams(bindparam("ids", expanding=True)),
                 {"ids": sorted(present)})
    freed: dict[str, int] = defaultdict(int)
    for hold in holds:
        if hold.id in present:
            for key in hold.keys:
                freed[key] += hold.micros
    conn.execute(text("UPDATE budget_spend SET reserved_micros = reserved_micros - :m WHERE key = :key"),
                 [{"m": micros, "key": key} for key, micros in freed.items()])


def _warnings(conn: Connection, standings: list[Standing], micros: int, warn_share: float) -> tuple[str, ...]:
    said = []
    for standing in standings:
        scope, used = standing.scope, standing.used + micros
        if scope.limit_micros and used >= warn_share * scope.limit_micros:
            message = f"budget: {scope.label}: {share_text(used, scope.limit_micros)} spent or held"
            said.append(message)
            record_alert(conn, kind="budget", severity="warning", message=message,
                         evidence={"key": scope.key, "spent_micros": standing.spent,
                                   "reserved_micros": standing.reserved + micros, "limit_micros": scope.limit_micros},
                         dedupe_key=f"budget:{scope.key}:{int(warn_share * 100)}")
    return tuple(said)
