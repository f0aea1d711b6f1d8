"""Copy a whole ledger into another database (SQLite to PostgreSQL, or back), in batches.

Both ledgers are first brought to this routecli's schema (the same migrations, so the same
tables and columns), then every table is streamed in primary-key order, a batch per target
transaction: memory stays constant whatever the ledger's size. Budget counters and holds are
not copied: counters are derived from the attempts (the target rebuilds them from its own
ledger when a limit first needs one; with --append the copied costs are added to counters the
target already has, as any insert does), and holds belong to calls in flight on the source.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from sqlalchemy import Connection, bindparam, column, func, insert, inspect, select, table
from sqlalchemy.exc import SQLAlchemyError

from routecli.errors import StoreError, UsageError
from routecli.store.budgets import add_spend
from routecli.store.db import Store, open_store
from routecli.store.engine import describe, reason, to_url, write_transaction

NOT_COPIED = ("_migrations", "budget_spend", "budget_holds")


@dataclass(frozen=True)
class Copied:
    table: str
    source_rows: int
    copied: int  # rows inserted into the target
    skipped: int  # --append: rows whose primary key the target already had


def copy_ledger(source: str, target: str, *, batch_size: int = 1000, append: bool = False,
                progress: Callable[[str, int], None] | None = None) -> list[Copied]:
    """Copy every table of `source` into `target` (paths or URLs); what each table got.

    Refuses a target that already holds rows unless `append`, which skips rows the target has."""
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    if _identity(source) == _identity(target):
        raise UsageError(f"--from and --to are the same ledger ({describe(to_url(source))}); choose another target")
    _refuse_missing(source)
    with open_store(source) as src, open_store(target) as dst:
        tables = _tables(src, dst)
        if not append:
            _refuse_non_empty(dst, tables)
        done = [_copy_table(src, dst, name, batch_size, append, progress) for name in tables]
        _verify(dst, done, append)
    return done


def _identity(location: str) -> str:
    url = to_url(location)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return str(Path(url.database).resolve())  # a path and a sqlite:/// URL of the same file
    return url.render_as_string(hide_password=False)


def _refuse_missing(source: str) -> None:
    """Opening a path that does not exist would create an empty ledger there and copy nothing."""
    url = to_url(source)
    if url.get_backend_name() == "sqlite" and url.database and not url.database.startswith("file:") \
            and not Path(url.database).exists():
        raise UsageError(f"There is no ledger at {url.database}; check --from (`routecli config path` "
                         "shows where the default one lives)")


def _tables(src: Store, dst: Store) -> list[str]:
    """The target's tables in foreign-key order (a referenced table first), but those not
    copied; the source has the same ones, both being fully migrated."""
    with dst.read() as conn:
        inspector = inspect(conn)
        ordered = [name for name, _ in inspector.get_sorted_table_and_fkc_names() if name]
    with src.read() as conn:
        present = set(inspect(conn).get_table_names())
    missing = [name for name in ordered if name not in present and name not in NOT_COPIED]
    if missing:  # pragma: no cover - open_store migrated both to the same schema
        raise StoreError(f"The source ledger has no table {', '.join(missing)}; this is a routecli bug")
    return [name for name in ordered if name not in NOT_COPIED]


def _shape(conn: Connection, name: str) -> tuple[Any, list[str]]:
    inspector = inspect(conn)
    names = [col["name"] for col in inspector.get_columns(name)]
    keys = inspector.get_pk_constraint(name)["constrained_columns"] or names
    return table(name, *(column(n) for n in names)), keys


def _count(conn: Connection, name: str) -> int:
    return int(conn.execute(select(func.count()).select_from(table(name))).scalar_one())


def _refuse_non_empty(dst: Store, tables: list[str]) -> None:
    with dst.read() as conn:
        filled = [f"{name} ({n} rows)" for name in tables if (n := _count(conn, name))]
    if filled:
        raise UsageError(f"The target ledger {dst.location} already holds rows: {', '.join(filled)}; "
                         "copy into an empty database, or add --append to keep them and add the source's")


def _copy_table(src: Store, dst: Store, name: str, batch_size: int, append: bool,
                progress: Callable[[str, int], None] | None) -> Copied:
    with dst.read() as conn:
        shape, keys = _shape(conn, name)
        before = _count(conn, name)
    seen = 0
    try:
        for rows in _batches(src, shape, keys, batch_size):
            with write_transaction(dst.engine) as conn:
                _insert(conn, shape, keys, rows, append)
            seen += len(rows)
            if progress:
                progress(name, seen)
    except SQLAlchemyError as exc:
        raise StoreError(
            f"Copying {name} into {dst.location} stopped after {seen} rows: {reason(exc)}; "
            "what was copied stays: run the same command with --append to finish"
        ) from None
    with dst.read() as conn:
        copied = _count(conn, name) - before
    return Copied(name, seen, copied, seen - copied)


def _batches(src: Store, shape: Any, keys: list[str], size: int) -> Iterator[list[dict[str, Any]]]:
    """The source's rows in primary-key order, `size` at a time, never all in memory."""
    query = select(shape).order_by(*(shape.c[key] for key in keys))
    with src.read() as conn:
        result = conn.execution_options(stream_results=True, yield_per=size).execute(query)
        for part in result.mappings().partitions():
            yield [dict(row) for row in part]


def _insert(conn: Connection, shape: Any, keys: list[str], rows: list[dict[str, Any]], append: bool) -> None:
    if shape.name == "attempts":
        if append:  # attempts the target already has are neither inserted nor counted again
            have = set(conn.execute(select(shape.c.id).where(shape.c.id.in_(bindparam("ids", expanding=True))),
                                    {"ids": [row["id"] for row in rows]}).scalars())
            rows = [row for row in rows if row["id"] not in have]
        if rows:
            conn.execute(insert(shape), rows)
            add_spend(conn, rows)  # the target's existing budget counters see these costs
        return
    if append:
        conn.execute(_insert_ignoring(conn, shape, keys), rows)
    else:
        conn.execute(insert(shape), rows)


def _insert_ignoring(conn: Connection, shape: Any, keys: list[str]) -> Any:
    """INSERT ... ON CONFLICT (primary key) DO NOTHING, which both backends spell alike."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert(shape).on_conflict_do_nothing(index_elements=keys)


def _verify(dst: Store, done: list[Copied], append: bool) -> None:
    """Every source row reached the target: the counts match (with --append, the target holds
    at least the source's rows)."""
    with dst.read() as conn:
        counts = {c.table: _count(conn, c.table) for c in done}
    wrong = [f"{c.table}: {counts[c.table]} rows in the target, {c.source_rows} in the source" for c in done
             if counts[c.table] < c.source_rows or (counts[c.table] != c.source_rows and not append)]
    if wrong:
        raise StoreError("The copy does not match its source (" + "; ".join(wrong) + "); was another "
                         "process writing to the target? Copy again into an empty database")
