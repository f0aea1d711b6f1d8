"""Attempts' tags as rows: the `attempt_tags` table (migration m008_attempt_tags) and its writer.

`attempts.tags` stays the JSON list it always was; `attempt_tags` has one row per (attempt,
distinct tag) with a copy of the columns `stats --by tag` reads, so a breakdown by tag is an
index scan instead of expanding and sorting every attempt's JSON (see m008's docstring).
Attempts are never updated (`db prune` deletes their tag rows with them), so the copy cannot
drift: `add_tags` writes an attempt's rows in the same transaction as the attempt itself
(`Store.record` and the batch `Committer`), as `budgets.add_spend` does for the budget
counters. `lead` marks one row per attempt (its least tag), so the lead rows count each
tagged attempt once.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from sqlalchemy import BigInteger, Column, Connection, Double, Integer, MetaData, Table, Text

from routecli.store.models import UTCDateTime, stamp

# Copied from the attempt, under the same names: the cube's keys and sums, and what the
# percentile indexes need (status, source, the metrics).
COPIED: tuple[str, ...] = (
    "created_at", "status", "source", "step", "cache_kind", "input_tokens", "output_tokens", "cached_tokens",
    "reasoning_tokens", "cost_micros", "baseline_cost_micros", "saved_micros", "latency_ms", "ttft_ms",
    "confidence", "score",
)

ATTEMPT_TAGS = Table(  # maps m008's table for queries; the schema itself is the migration's
    "attempt_tags", MetaData(),
    Column("attempt_id", Text, primary_key=True),
    Column("tag", Text, primary_key=True),
    Column("lead", Integer, nullable=False),  # 1 on the attempt's least tag, 0 on its others
    Column("created_at", UTCDateTime, nullable=False),
    Column("status", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("step", Text, nullable=False),
    Column("cache_kind", Text),
    *(Column(name, Integer) for name in ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens")),
    *(Column(name, BigInteger) for name in ("cost_micros", "baseline_cost_micros", "saved_micros")),
    *(Column(name, Double) for name in ("latency_ms", "ttft_ms", "confidence")),
    Column("score", Double, nullable=False),
)

_MARKS = {"qmark": "?", "format": "%s", "pyformat": "%s"}  # the driver's placeholder: SQLite's, psycopg's
_INSERT = "INSERT INTO attempt_tags (attempt_id, tag, lead, {columns}) VALUES ({marks})"


def tags_of(row: dict[str, Any]) -> list[str]:
    """The row's distinct tags in their order (a tag given twice is one row; None is no tag)."""
    tags = row.get("tags") or []
    if isinstance(tags, str):
        tags = json.loads(tags)
    return list(dict.fromkeys(str(tag) for tag in tags if tag is not None))


def add_tags(conn: Connection, rows: Iterable[dict[str, Any]]) -> None:
    """Write the attempt rows' tag rows; call inside the rows' insert transaction.

    Sent to the driver as is (plain values, positional), as the batch Committer does: going
    through SQLAlchemy's parameter handling cost more than the inserts themselves."""
    params = []
    for row in rows:
        tags = tags_of(row)
        if not tags:
            continue
        created = row["created_at"]
        copied = (created if isinstance(created, str) else stamp(created), *(row.get(name) for name in COPIED[1:]))
        least = min(tags)
        params += [(row["id"], tag, int(tag == least), *copied) for tag in tags]
    if params:
        mark = _MARKS[conn.dialect.paramstyle]
        sql = _INSERT.format(columns=", ".join(COPIED), marks=", ".join([mark] * (len(COPIED) + 3)))
        conn.exec_driver_sql(sql, params)
