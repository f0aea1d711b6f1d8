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
from decimal import Decimal
from typing import IO, Any, Callable, Iterable, Iterator, Sequence

from sqlalchemy import ColumnElement, Text, exists, select, type_coerce

from routecli.analytics.stats import time_window
from routecli.errors import UsageError
from routecli.pricing import format_usd, from_micros, to_micros
from routecli.store import Store
from routecli.store.models import ATTEMPTS, COLUMNS
from routecli.store.tags import ATTEMPT_TAGS

_MONEY = {"cost_usd": "cost_micros", "baseline_cost_usd": "baseline_cost_micros", "saved_usd": "saved_micros"}
_TO_EXPORT = {column: name for name, column in _MONEY.items()}
EXPORT_COLUMNS: tuple[str, ...] = tuple(_TO_EXPORT.get(column, column) for column in COLUMNS)

_BATCH = 500
# Fields --where takes: every plain column (JSON lists and times have their own filters: tag, --since).
_FILTERABLE = frozenset(EXPORT_COLUMNS) - {"tags", "signals", "reasons", "notes", "created_at"}
_INTEGERS = frozenset({"input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens"})
_FLOATS = frozenset({"score", "ttft_ms", "latency_ms", "similarity", "confidence"})
_JSON_COLUMNS = frozenset({"tags", "signals", "reasons", "notes"})
_TEXT_TYPED = _JSON_COLUMNS | {"created_at"}  # read as the stored text; _converter does the rest
# A spreadsheet runs a cell starting with these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def iter_rows(
    store: Store,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    columns: Sequence[str] | None = None,
    where: Sequence[tuple[str, str]] = (),
    json_text: bool = False,
) -> Iterator[dict[str, Any]]:
    """Attempts in [since, until) matching every `where` (field, value), oldest first, as
    JSON-ready dicts of the chosen columns. `json_text`: list and object columns stay the JSON
    text they are stored as (what CSV writes anyway; saves decoding a million of them)."""
    names = check_columns(columns)
    # Raw column values: each is converted once below, cheaper than SQLAlchemy's per-type processing.
    selected = [_raw_column(name) for name in names]
    convert = [_converter(name, json_text) for name in names]
    query = (
        select(*selected)
        .where(time_window(since, until), *(_condition(field, value) for field, value in where))
        .order_by(ATTEMPTS.c.created_at, ATTEMPTS.c.id)
        .execution_options(yield_per=_BATCH)
    )
    with store.read() as conn:
        for row in conn.execute(query):
            yield dict(zip(names, [value if f is None or value is None else f(value)
                                   for f, value in zip(convert, row)]))


def _raw_column(name: str) -> Any:
    column = ATTEMPTS.c[_MONEY.get(name, name)]
    return type_coerce(column, Text()) if name in _TEXT_TYPED else column


def _dollars(micros: int) -> str | None:
    return format_usd(from_micros(micros))


def _converter(name: str, json_text: bool) -> Callable[[Any], Any] | None:
    if name in _MONEY:
        return _dollars
    if name == "created_at":
        return _iso_time
    if name in _JSON_COLUMNS and not json_text:
        return json.loads
    return None


def _iso_time(stored: str) -> str:
    """'2026-01-01T01:00:00.000000Z' -> '2026-01-01T01:00:00+00:00', as datetime.isoformat() says it."""
    fraction = stored[19:26]
    return stored[:19] + ("" if fraction == ".000000" else fraction) + "+00:00"


def parse_where(texts: Sequence[str]) -> list[tuple[str, str]]:
    """`field=value` filters from the command line, checked before any query runs."""
    out = []
    for item in texts:
        field, sep, value = item.partition("=")
        field = field.strip()
        if not sep or not field:
            raise UsageError(f"Bad --where {item!r}: write it as field=value, e.g. --where tier=cheap")
        _condition(field, value)  # refuses an unknown field or a value of the wrong type now
        out.append((field, value))
    return out


def _condition(field: str, value: str) -> ColumnElement[bool]:
    """One filter: the field is checked against the known columns (never put into SQL as text),
    the value is a bound parameter; an empty value means NULL; `tag` matches one of the tags."""
    if field in ("tag", "tags"):
        tags = ATTEMPT_TAGS.c  # m008's rows: one primary-key probe per attempt, no JSON parsed
        return exists(select(1).where(tags.attempt_id == ATTEMPTS.c.id, tags.tag == value))
    if field not in _FILTERABLE:
        raise UsageError(
            f"Cannot filter on {field!r}; --where takes tag or one of: {', '.join(sorted(_FILTERABLE))}"
        )
    column = ATTEMPTS.c[_MONEY.get(field, field)]
    if value == "":
        return column.is_(None)
    return column == _typed(field, value)


def _typed(field: str, value: str) -> Any:
    try:
        if field in _MONEY:
            return to_micros(Decimal(value))
        if field in _INTEGERS:
            return int(value)
        if field in _FLOATS:
            return float(value)
    except (ArithmeticError, ValueError):
        raise UsageError(f"--where {field}={value}: {field} takes a number") from None
    return value


def check_columns(columns: Sequence[str] | None) -> list[str]:
    if not columns:
        return list(EXPORT_COLUMNS)
    unknown = [name for name in columns if name not in EXPORT_COLUMNS]
    if unknown:
        raise UsageError(
            f"Unknown export column(s) {', '.join(unknown)}; choose from: {', '.join(EXPORT_COLUMNS)}"
        )
    return list(dict.fromkeys(columns))


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
    if value.__class__ is str:  # the common case first: one check, then the formula test
        return "'" + value if value.startswith(_FORMULA_START) else value
    if value is None:
        return ""
    if isinstance(value, (list, tuple, dict)):
        return _csv_cell(json.dumps(value, ensure_ascii=False, sort_keys=True))
    return _csv_cell(value) if isinstance(value, str) else value


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

