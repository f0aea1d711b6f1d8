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
    copied, skipped = sum(c.copied for c in done), sum(c.skipped for c in done)
    already = f" ({skipped} already there)" if skipped else ""
    note(f"copied {copied} rows{already} into {where}; every table's row count checked")


@db_app.command("prune")
def prune(
    before: str = typer.Option(..., "--before", help="Remove attempts older than this: 90d, or a date like 2026-01-01."),
    export: Optional[str] = typer.Option(None, "--export", help="First write the rows to this JSONL file."),
    yes: bool = typer.Option(False, "--yes", help="Remove them without keeping a copy."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would be removed."),
    db: Optional[str] = typer.Option(None, "--db", envvar="ROUTECLI_DB", help="Ledger path or URL."),
) -> None:
    """Remove old attempts (and finished batch runs), keeping their daily sums so totals and budgets stay right.

    Attempts of a running A/B test and of unfinished runs are kept whatever their age."""
    from routecli.when import parse_when
    from routecli.cli.output import note
    from routecli.config import db_location
    from routecli.errors import UsageError
    from routecli.store import open_store
    from routecli.store import prune as pruning

    cut = parse_when(before)
    if not (export or yes or dry_run):
        raise UsageError("Pruning deletes rows: pass --export FILE.jsonl to keep a copy first, or --yes, "
                         "or --dry-run to see what would go")
    with open_store(db_location(db)) as store:
        plan = pruning.counts(store, cut)
        kept = f"; kept {plan.kept_ab} for running A/B tests and {plan.kept_runs} for unfinished runs"
        if dry_run:
            note(f"would remove {plan.attempts:,} attempts (${plan.cost_micros / 1e6:,.4f}) and {plan.runs} "
                 f"finished runs from before {cut:%Y-%m-%d %H:%M} UTC{kept}")
            return
        if export:
            _export_before(store, cut, export)
        done = pruning.prune(store, cut)
    note(f"removed {done.attempts:,} attempts (${done.cost_micros / 1e6:,.4f}, kept as daily totals) and "
         f"{done.runs} finished runs{kept}" + (f"; a copy is in {export}" if export else ""))


def _export_before(store: object, cut: object, path: str) -> None:
    from routecli.analytics.export import iter_rows, write_jsonl
    from routecli.errors import UsageError

    try:
        with open(path, "x", encoding="utf-8") as fh:
            write_jsonl(iter_rows(store, until=cut), fh)
    except FileExistsError:
        raise UsageError(f"{path} exists; pick a new file for the export, so no earlier copy is overwritten") from None
    except OSError as exc:
        raise UsageError(f"Cannot write {path}: {exc.strerror or exc}; nothing was removed") from None


@db_app.command("vacuum")
def vacuum(db: Optional[str] = typer.Option(None, "--db", envvar="ROUTECLI_DB", help="Ledger path or URL.")) -> None:
    """Give the space of removed rows back (after `db prune`)."""
    from routecli.cli.output import note
    from routecli.config import db_location
    from routecli.store import open_store
    from routecli.store.prune import vacuum as run_vacuum

    with open_store(db_location(db)) as store:
        run_vacuum(store)
        note(f"vacuumed {store.location}")
