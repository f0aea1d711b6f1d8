"""Stream ledger rows out as CSV, a JSON array or JSON Lines, in constant memory.

Rows come from the database in batches and are written one at a time; nothing builds
the whole export in memory. Money leaves as decimal dollars (`cost_usd`), times as
ISO-8601 UTC.
"""

from __future__ import annotations

import csv
import itertools
import json
from datetime import datetime
from typing import IO, Any, Iterable, Iterator, Sequence

from sqlalchemy import select

from routecli.analytics.stats import time_window
from routecli.errors import UsageError
from routecli.pricing import format_usd, from_micros
from routecli.store import Store
from routecli.store.models import ATTEMPTS, COLUMNS

_MONEY = {"cost_usd": "cost_micros", "baseline_cost_usd": "baseline_cost_micros"}
_TO_EXPORT = {column: name for name, column in _MONEY.items()}
EXPORT_COLUMNS: tuple[str, ...] = tuple(_TO_EXPORT.get(column, column) for column in COLUMNS)

_BATCH = 500
# A spreadsheet runs a cell starting with these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def iter_rows(
    store: Store,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    columns: Sequence[str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Attempts in [since, until), oldest first, as JSON-ready dicts of the chosen columns."""
    names = check_columns(columns)
    selected = [ATTEMPTS.c[_MONEY.get(name, name)] for name in names]
    query = (
        select(*selected)
        .where(time_window(since, until))
        .order_by(ATTEMPTS.c.created_at, ATTEMPTS.c.id)
        .execution_options(yield_per=_BATCH)
    )
    with store.read() as conn:
        for row in conn.execute(query):
            yield {name: _export_value(name, value) for name, value in zip(names, row)}


def check_columns(columns: Sequence[str] | None) -> list[str]:
    if not columns:
        return list(EXPORT_COLUMNS)
    unknown = [name for name in columns if name not in EXPORT_COLUMNS]
    if unknown:
        raise UsageError(
            f"Unknown export column(s) {', '.join(unknown)}; choose from: {', '.join(EXPORT_COLUMNS)}"
        )
    return list(dict.fromkeys(columns))


def _export_value(name: str, value: Any) -> Any:
    if name in _MONEY:
        return format_usd(from_micros(value))
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def write_csv(rows: Iterable[dict[str, Any]], fh: IO[str], columns: Sequence[str] | None = None) -> int:
    """Write rows as CSV (open `fh` with newline=""); return how many rows were written.

    The header is `columns`, else the first row's keys, else every export column.
    """
    iterator = iter(rows)
    first = next(iterator, None)
    header = list(columns or (first.keys() if first is not None else EXPORT_COLUMNS))
    writer = csv.writer(fh)
    writer.writerow(header)
    if first is None:
        return 0
    count = 0
    for row in itertools.chain([first], iterator):
        writer.writerow([_csv_cell(row.get(name)) for name in header])
        count += 1
    return count


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (list, tuple, dict)):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def write_json(rows: Iterable[dict[str, Any]], fh: IO[str]) -> int:
    """Write rows as one JSON array, element by element; return how many."""
    count = 0
    fh.write("[")
    for row in rows:
        fh.write(",\n" if count else "\n")
        fh.write(_json(row))
        count += 1
    fh.write("\n]\n" if count else "]\n")
    return count


def write_jsonl(rows: Iterable[dict[str, Any]], fh: IO[str]) -> int:
    """Write one JSON object per line; return how many."""
    count = 0
    for row in rows:
        fh.write(_json(row) + "\n")
        count += 1
    return count


def _json(row: dict[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False, default=str)

