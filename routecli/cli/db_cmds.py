"""`routecli db ...`: the ledger's database itself (schema, moving it to another database)."""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer

db_app = typer.Typer(
    help="The ledger's database: apply migrations, copy a ledger (e.g. SQLite to a shared PostgreSQL).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@db_app.command("migrate")
def migrate(
    db: Optional[str] = typer.Option(None, "--db", envvar="ROUTECLI_DB", help="Ledger path or URL."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Apply the migrations this ledger does not have yet, and say which (every command does this too)."""
    from routecli.config import db_location
    from routecli.store import MIGRATIONS
    from routecli.store.db import migrate_store

    store, applied = migrate_store(db_location(db))
    with store:
        where = store.location
    if as_json:
        typer.echo(json.dumps({"ledger": where, "applied": applied,
                               "migrations": [fn.__name__ for fn in MIGRATIONS]}, indent=2))
    elif applied:
        typer.echo(f"{where}: applied {', '.join(applied)}")
    else:
        typer.echo(f"{where}: up to date ({len(MIGRATIONS)} migrations)")


@db_app.command("copy")
def copy(
    source: str = typer.Option(..., "--from", help="The ledger to copy: a path or URL (sqlite:///..., postgresql://...)."),
    target: str = typer.Option(..., "--to", help="Where to copy it: a path or URL; created and migrated if new."),
    batch_size: int = typer.Option(1000, "--batch-size", help="Rows per target transaction."),
    append: bool = typer.Option(False, "--append", help="Copy into a ledger that already has rows, "
                                "skipping rows it already holds (also finishes an interrupted copy)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Copy every table of a ledger into another database, in batches, then check the row counts."""
    from routecli.cli.output import note
    from routecli.store.copy import copy_ledger
    from routecli.store.engine import describe, to_url

    shown = sys.stderr.isatty()

    def progress(table: str, rows: int) -> None:
        if shown:
            sys.stderr.write(f"\r{table}: {rows} rows")
            sys.stderr.flush()

    done = copy_ledger(source, target, batch_size=batch_size, append=append, progress=progress)
    if shown:
        sys.stderr.write("\r\x1b[K")
    where = describe(to_url(target))
    if as_json:
        typer.echo(json.dumps({"to": where, "tables": [c.__dict__ for c in done]}, indent=2))
        return
    for c in done:
        skipped = f" ({c.skipped} already there)" if c.skipped else ""
        typer.echo(f"{c.table}: {c.copied} rows copied{skipped}")
    total = sum(c.source_rows for c in done)
    note(f"copied {total} rows into {where}; every table's row count checked")
