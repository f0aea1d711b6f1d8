"""A/B tests and feedback in the ledger: the `ab_tests` and `feedback` tables of migration m005_ab."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Column, Double, MetaData, Table, Text, insert, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from routecli.analytics.ab import BY_KEYS, MAX_VARIANTS, ABTest, check_name, parse_strategy
from routecli.errors import StoreError, UsageError
from routecli.store import Store, new_id, utcnow
from routecli.store.engine import reason, write_transaction
from routecli.store.models import ATTEMPTS, UTCDateTime

_metadata = MetaData()
AB_TESTS = Table(
    "ab_tests", _metadata,
    Column("name", Text, primary_key=True),
    Column("variants", Text, nullable=False),  # JSON: [{"name": "a", "strategy": "rules"}, ...]
    Column("split", Text, nullable=False),  # "50/50"
    Column("by_key", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("stopped_at", UTCDateTime),
)
FEEDBACK = Table(
    "feedback", _metadata,
    Column("id", Text, primary_key=True),
    Column("request_id", Text, nullable=False),
    Column("attempt_id", Text),  # NULL when the id given was a request's
    Column("score", Double, nullable=False),
    Column("note", Text),
    Column("created_at", UTCDateTime, nullable=False),
)


def _fail(store: Store, what: str, exc: SQLAlchemyError) -> StoreError:
    return StoreError(f"Cannot {what} in the ledger at {store.location}: {reason(exc)}")


def _to_test(row: Any) -> ABTest:
    variants = tuple((item["name"], parse_strategy(item["strategy"])) for item in json.loads(row.variants))
    split = tuple(int(part) for part in row.split.split("/"))
    return ABTest(row.name, variants, split, row.by_key, row.status)


def describe(row: Any) -> dict[str, Any]:
    """A test's row as JSON-ready data."""
    return {
        "name": row.name,
        "status": row.status,
        "by": row.by_key,
        "split": row.split,
        "variants": json.loads(row.variants),
        "started_at": row.started_at.isoformat(),
        "stopped_at": row.stopped_at.isoformat() if row.stopped_at else None,
    }


def running_tests(store: Store) -> tuple[ABTest, ...]:
    """The running tests, oldest first: what `Engine.decide` assigns requests to."""
    query = select(AB_TESTS).where(AB_TESTS.c.status == "running").order_by(AB_TESTS.c.started_at)
    with store.read() as conn:
        return tuple(_to_test(row) for row in conn.execute(query))


def list_rows(store: Store, name: str | None = None) -> list[Any]:
    query = select(AB_TESTS).order_by(AB_TESTS.c.started_at)
    if name is not None:
        query = query.where(AB_TESTS.c.name == name)
    with store.read() as conn:
        return list(conn.execute(query))


def get_test(store: Store, name: str) -> Any:
    rows = list_rows(store, name)
    if not rows:
        known = ", ".join(row.name for row in list_rows(store)) or "none yet"
        raise UsageError(f"No A/B test named {name!r} (known: {known}); `routecli ab list` shows them")
    return rows[0]


def start_test(store: Store, test: ABTest) -> dict[str, Any]:
    """Record a new running test; refuse a taken name or a second running test."""
    check_name(test.name)
    if test.by not in BY_KEYS:
        raise UsageError(f"Bad --by {test.by!r}: use one of {', '.join(BY_KEYS)}")
    if not 2 <= len(test.variants) <= MAX_VARIANTS:
        raise UsageError(f"An A/B test needs 2 to {MAX_VARIANTS} variants: --variant a=rules --variant b=learned@0.5")
    names = [name for name, _ in test.variants]
    if len(set(names)) != len(names):
        raise UsageError(f"Variant names must differ, got {', '.join(names)}")
    row = {
        "name": test.name,
        "variants": json.dumps([{"name": n, "strategy": s.text} for n, s in test.variants]),
        "split": "/".join(str(share) for share in test.split),
        "by_key": test.by,
        "status": "running",
        "started_at": utcnow(),
        "stopped_at": None,
    }
    try:
        with write_transaction(store.engine) as conn:  # checked and inserted under the write lock
            taken = conn.execute(select(AB_TESTS.c.status).where(AB_TESTS.c.name == test.name)).first()
            if taken:
                raise UsageError(f"An A/B test named {test.name!r} exists ({taken.status}); pick another name")
            running = conn.execute(select(AB_TESTS.c.name).where(AB_TESTS.c.status == "running")).first()
            if running:
                # two tests at once would split one another's traffic unevenly; one at a time
                raise UsageError(f"A/B test {running.name!r} is running; stop it first: routecli ab stop {running.name}")
            conn.execute(insert(AB_TESTS), [row])
    except SQLAlchemyError as exc:
        raise _fail(store, "start the A/B test", exc) from None
    return describe(get_test(store, test.name))


def stop_test(store: Store, name: str) -> dict[str, Any]:
    row = get_test(store, name)
    if row.status == "stopped":
        raise UsageError(f"A/B test {name!r} was already stopped; `routecli ab report {name}` shows its results")
    try:
        with write_transaction(store.engine) as conn:
            conn.execute(update(AB_TESTS).where(AB_TESTS.c.name == name).values(status="stopped", stopped_at=utcnow()))
    except SQLAlchemyError as exc:
        raise _fail(store, "stop the A/B test", exc) from None
    return describe(get_test(store, name))


def resolve_id(store: Store, ident: str) -> tuple[str, str | None]:
    """(request id, attempt id or None) for an attempt id or a request id; refuses an unknown one."""
    c = ATTEMPTS.c
    query = (
        select(c.id, c.request_id)
        .where(or_(c.id == ident, c.request_id == ident))
        .order_by((c.id == ident).desc())
        .limit(1)
    )
    with store.read() as conn:
        row = conn.execute(query).first()
    if row is None:
        raise UsageError(
            f"No attempt or request with id {ident!r} in the ledger at {store.location}; "
            "`routecli ask --json` prints an answer's id, `routecli export --jsonl` lists them all"
        )
    return (row.request_id, ident) if row.id == ident else (ident, None)


def add_feedback(store: Store, ident: str, score: float, note: str | None = None) -> dict[str, Any]:
    """Record a person's score (0..1) of an answer; the latest score of a request is the one that counts."""
    if not 0.0 <= score <= 1.0:
        raise UsageError(f"--score {score:g} is outside 0..1: give 0 for useless, 1 for perfect, or between")
    request_id, attempt_id = resolve_id(store, ident)
    row = {"id": new_id(), "request_id": request_id, "attempt_id": attempt_id, "score": float(score),
           "note": note, "created_at": utcnow()}
    try:
        with write_transaction(store.engine) as conn:
            conn.execute(insert(FEEDBACK), [row])
    except SQLAlchemyError as exc:
        raise _fail(store, "record the feedback", exc) from None
    return {**row, "created_at": row["created_at"].isoformat()}
