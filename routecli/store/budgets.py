"""Budget counters and holds in the store: reserve a call's worst case, release it after.

`spent_micros` per key is created lazily from the ledger (one SUM under the write lock) and
then kept current by every attempt insert (`add_spend`, in the insert's own transaction), so
it never drifts from the ledger whichever process wrote the rows. A hold is what a call in
flight may still cost; a process that dies leaves its holds behind, and they expire.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable

from sqlalchemy import Connection, text

from routecli.guard.budget import Scope, keys_for_row, share_text
from routecli.store.alerts import record_alert
from routecli.store.engine import write_transaction
from routecli.store.models import new_id, stamp

HOLD_TTL = timedelta(hours=1)  # longer than any call may take; a hold older than this was abandoned


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
    """Atomically: check every limit has room for `micros` more, then hold it on all of them."""
    with write_transaction(store.engine) as conn:
        _expire_holds(conn, now)
        standings = [_standing(conn, scope, now) for scope in scopes]
        for standing in standings:
            if standing.used + micros > standing.scope.limit_micros:
                return Reservation(None, standing, ())
        hold = Hold(new_id(), tuple(s.scope.key for s in standings), micros)
        for key in hold.keys:
            conn.execute(text("UPDATE budget_spend SET reserved_micros = reserved_micros + :m, updated_at = :at "
                              "WHERE key = :key"), {"m": micros, "at": stamp(now), "key": key})
        conn.execute(text("INSERT INTO budget_holds (id, keys, micros, created_at) VALUES (:id, :keys, :m, :at)"),
                     {"id": hold.id, "keys": json.dumps(hold.keys), "m": micros, "at": stamp(now)})
        warnings = _warnings(conn, standings, micros, warn_share)
    return Reservation(hold, None, warnings)


def release(store: Any, hold: Hold | None) -> None:
    """The call is over (its cost, if any, is in the ledger): free what it held."""
    if hold is None:
        return
    with write_transaction(store.engine) as conn:
        _drop_hold(conn, hold.id, hold.keys, hold.micros)


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


def _standing(conn: Connection, scope: Scope, now: datetime) -> Standing:
    row = conn.execute(text("SELECT spent_micros, reserved_micros FROM budget_spend WHERE key = :key"),
                       {"key": scope.key}).first()
    if row is None:
        spent = _ledger_spend(conn, scope)
        conn.execute(text("INSERT INTO budget_spend (key, spent_micros, reserved_micros, updated_at) "
                          "VALUES (:key, :spent, 0, :at)"), {"key": scope.key, "spent": spent, "at": stamp(now)})
        return Standing(scope, spent, 0)
    return Standing(scope, int(row.spent_micros), int(row.reserved_micros))


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
        # tags is a JSON list; a tag's quoted form is unambiguous inside it
        where.append("tags LIKE :tag ESCAPE '\\'")
        escaped = json.dumps(scope.tag).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
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
    for row in stale:
        _drop_hold(conn, row.id, tuple(json.loads(row.keys)), int(row.micros))


def _drop_hold(conn: Connection, hold_id: str, keys: tuple[str, ...], micros: int) -> None:
    gone = conn.execute(text("DELETE FROM budget_holds WHERE id = :id"), {"id": hold_id}).rowcount
    if gone:
        conn.execute(text("UPDATE budget_spend SET reserved_micros = reserved_micros - :m WHERE key = :key"),
                     [{"m": micros, "key": key} for key in keys])


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
