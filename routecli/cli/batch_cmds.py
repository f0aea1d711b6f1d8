"""`routecli batch` (many prompts, concurrent, resumable) and `routecli runs` (what the batches did).

stdout carries only results (JSONL); progress, warnings and the summary go to stderr.
Exit codes: 0 all lines answered, 1 some line failed (0 with --allow-errors), 2 bad
command-line input (nothing recorded), 130 interrupted (the resume command is printed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from routecli.cli import app
from routecli.errors import UsageError

if TYPE_CHECKING:
    from routecli.batch.runner import Runner, Tally
    from routecli.batch.session import Session
    from routecli.batch.source import BatchInput

INTERRUPTED = 130  # the shell's code for a process stopped by SIGINT
ORDERS = ("input", "done")


def _check_options(concurrency: int, max_retries: int, backoff: float, order: str, resume: bool,
                   run_id: Optional[str]) -> None:
    if not 1 <= concurrency <= 4096:
        raise UsageError(f"--concurrency must be between 1 and 4096, got {concurrency}; try 16")
    if max_retries < 0 or backoff < 0:
        raise UsageError("--max-retries and --backoff must be 0 or more")
    if order not in ORDERS:
        raise UsageError(f"--order must be one of {', '.join(ORDERS)}, got {order!r}")
    if run_id is not None and not resume:
        raise UsageError(f"A run id ({run_id}) goes with --resume: `routecli batch FILE --resume {run_id}`")


def _loop_setting() -> str:
    """ROUTECLI_LOOP, refused before anything is recorded if it names no event loop."""
    from routecli.loops import configured_loop, event_loop

    loop = configured_loop()
    event_loop(loop)
    return loop


def _dollars(text: Optional[str]) -> Any:
    if text is None:
        return None
    from decimal import Decimal, InvalidOperation

    try:
        amount = Decimal(text.strip().lstrip("$"))
    except InvalidOperation:
        amount = Decimal(-1)
    if not amount.is_finite() or amount < 0:
        raise UsageError(f"--budget must be an amount in dollars such as 5.00, got {text!r}")
    return amount


def _check_output(output: Optional[Path], source: BatchInput) -> None:
    if output is None:
        return
    if output.is_dir():
        raise UsageError(f"--output {output} is a directory; give a file name such as results.jsonl")
    if not output.parent.is_dir():
        raise UsageError(f"--output {output}: the folder {output.parent} does not exist; create it first")
    if source.name != "-" and output.resolve() == Path(source.name).resolve():
        raise UsageError("--output is the input file; write the results somewhere else")


@app.command()
def batch(
    input: str = typer.Argument(..., help="JSONL file, one request per line, or - for stdin."),
    run_id: Optional[str] = typer.Argument(None, help="With --resume: the run to continue."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Results JSONL file (default: stdout)."),
    concurrency: int = typer.Option(16, "--concurrency", "-c", help="Requests in flight at once."),
    resume: bool = typer.Option(False, "--resume", help="Continue a run (default: the latest unfinished one "
                                "of INPUT): skip finished lines, retry the rest."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Decide and record each line; call no model."),
    stream: bool = typer.Option(False, "--stream", help="Stream each answer (a cut stream is then retried)."),
    max_retries: int = typer.Option(4, "--max-retries", help="Retries per line for 429, 5xx, timeouts, drops."),
    backoff: float = typer.Option(1.0, "--backoff", help="Seconds before the first retry; doubles each time."),
    order: str = typer.Option("input", "--order", help="Results in input order, or in the order done."),
    allow_errors: bool = typer.Option(False, "--allow-errors", help="Exit 0 even if some lines failed."),
    budget: Optional[str] = typer.Option(None, "--budget", help="Spend at most this many dollars in this run "
                                         "(pass it again with --resume); lines that would pass it are refused."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Always call the model, even for temperature-0 lines."),
    router: Optional[str] = typer.Option(None, "--router", help="Classifier for lines that name none: NAME or "
                                         "NAME:THRESHOLD."),
    db: Optional[str] = typer.Option(None, "--db", envvar="ROUTECLI_DB", help="Ledger path or URL."),
) -> None:
    """Route and answer every line of a JSONL file, concurrently; resumable, each line paid once."""
    _check_options(concurrency, max_retries, backoff, order, resume, run_id)
    loop = _loop_setting()
    run_budget = _dollars(budget)
    if router:
        from routecli.analytics.ab import router_strategy

        router_strategy(router)  # refused before anything is recorded
    from routecli.batch.source import BatchInput
    from routecli.config import db_location, load_config
    from routecli.keys import KeyRing

    config = load_config()
    with BatchInput.open(input) as source:
        if source.total == 0:
            raise UsageError(f"{input} has no lines; put one JSON request per line, e.g. "
                             '{"id": "1", "prompt": "..."}')
        _check_output(output, source)
        from routecli.store import open_store

        store = open_store(db_location(db))
        try:
            code = _run(config, KeyRing(config), store, source, output, db, dry_run=dry_run, resume=resume,
                        run_id=run_id, options=(concurrency, max_retries, backoff, stream, run_budget, not no_cache, router,
                                                loop),
                        order=order)
        finally:
            store.close()
    if code == 1 and allow_errors:
        code = 0
    raise typer.Exit(code)


def _run(config: Any, keys: Any, store: Any, source: BatchInput, output: Optional[Path], db: Optional[str], *,
         dry_run: bool, resume: bool, run_id: Optional[str], options: tuple, order: str) -> int:
    from routecli.batch.runner import BatchOptions
    from routecli.batch.session import execute, finish, open_session, resume_command
    from routecli.cli.batch_progress import watcher
    from routecli.cli.output import note

    session, notes = open_session(store, source, resume=resume, run_id=run_id, output=output, dry_run=dry_run)
    for text in notes:
        note(text)
    if session.complete:
        note(f"run {session.run.id} is complete: every line answered; nothing to resume")
        return 0
    concurrency, max_retries, backoff, stream, run_budget, use_cache, router, loop = options
    batch_options = BatchOptions(concurrency, max_retries, backoff, stream, dry_run or session.run.dry_run,
                                 budget=run_budget, use_cache=use_cache, router=router, loop=loop)
    runner = execute(config, keys, store, source, session, batch_options, notify=_say, watch=watcher())
    status = finish(store, session, runner, save_text=config.save_text, order=order)
    if not session.run.dry_run:
        from routecli.cli.ask import report_alerts

        report_alerts(store, config)
    _summary(store, session, runner.tally, runner)
    again = resume_command(source, session, db)
    if status == "interrupted":
        note(f"interrupted: {runner.tally.done:,} of {session.run.total_lines:,} lines done; resume with: {again}")
        return INTERRUPTED
    failed = runner.tally.failed + runner.tally.invalid
    if failed:
        note(f"to retry the failed lines: {again}")
    return 1 if failed else 0


def _say(kind: str, message: str) -> None:
    from routecli.cli import output

    {"error": output.error, "warning": output.warn}.get(kind, output.note)(message)


def _summary(store: Any, session: Session, tally: Tally, runner: Runner) -> None:
    from routecli.cli.output import note
    from routecli.pricing import from_micros
    from routecli.store.runs import counts

    total = counts(store, [session.run.id])[session.run.id]
    kinds = ", ".join(f"{kind} {n}" for kind, n in tally.errors.most_common())
    failed = f"{total.failed:,} failed" + (f" ({kinds})" if kinds else "")
    done = f"{total.ok:,} ok" if not session.run.dry_run else f"{total.dry_run:,} decided (dry run)"
    rate = (tally.done - tally.skipped) / tally.elapsed if tally.elapsed else 0.0
    unpriced = f" (+{total.unpriced} unpriced)" if total.unpriced else ""
    note(f"run {session.run.id}: {done}, {failed} of {session.run.total_lines:,} lines; "
         f"{total.attempts:,} attempts; ${from_micros(total.cost_micros)}{unpriced}; "
         f"this session {tally.elapsed:.1f} s, {rate:.1f} lines/s, "
         f"{runner.writer.stats.transactions:,} transactions")
    note(f"results: {session.output if session.output else 'stdout'}")


# ---------------------------------------------------------------- runs

runs_app = typer.Typer(help="Batch runs: their lines, attempts and cost, and how to resume them.",
                       invoke_without_command=True, add_completion=False)
app.add_typer(runs_app, name="runs")


def _run_json(run: Any, total: Any) -> dict[str, Any]:
    from routecli.pricing import format_usd, from_micros

    stamp = lambda when: None if when is None else when.isoformat().replace("+00:00", "Z")  # noqa: E731
    return {
        "id": run.id, "input": run.input_name, "input_sha256": run.input_hash, "output": run.output_path,
        "status": run.status, "dry_run": run.dry_run, "started_at": stamp(run.started_at),
        "finished_at": stamp(run.finished_at), "lines": run.total_lines, "ok": total.ok, "dry_runs": total.dry_run,
        "failed": total.error, "invalid": total.invalid,
        "pending": run.total_lines - total.finished - total.failed, "attempts": total.attempts,
        "cost_usd": format_usd(from_micros(total.cost_micros)), "unpriced": total.unpriced,
    }


@runs_app.callback()
def runs(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    limit: int = typer.Option(20, "--limit", "-n", help="How many runs, newest first."),
    db: Optional[str] = typer.Option(None, "--db", envvar="ROUTECLI_DB", help="Ledger path or URL."),
) -> None:
    """List batch runs, newest first, with their counts and cost."""
    if ctx.invoked_subcommand is not None:
        return
    from routecli.store.runs import counts, list_runs

    store = _open(db)
    try:
        found = list_runs(store, limit=max(limit, 1))
        totals = counts(store, [run.id for run in found])
    finally:
        store.close()
    rows = [_run_json(run, totals[run.id]) for run in found]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    _table(rows)


def _table(rows: list[dict[str, Any]]) -> None:
    import sys

    from rich import box
    from rich.console import Console
    from rich.table import Table

    from routecli.cli.ledger import usd

    if not rows:
        typer.echo("no batch runs yet: `routecli batch prompts.jsonl` starts one")
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for header in ("run", "started (UTC)", "status", "lines", "ok", "failed", "pending", "attempts", "cost", "input"):
        table.add_column(header, no_wrap=True, justify="left" if header in ("run", "status", "input") else "right")
    for row in rows:
        table.add_row(row["id"], (row["started_at"] or "")[:19].replace("T", " "),
                      row["status"] + (" (dry run)" if row["dry_run"] else ""), f"{row['lines']:,}",
                      f"{row['ok'] + row['dry_runs']:,}", f"{row['failed'] + row['invalid']:,}", f"{row['pending']:,}",
                      f"{row['attempts']:,}", usd(row["cost_usd"]) + (" +unpriced" if row["unpriced"] else ""),
                      row["input"])
    Console(width=None if sys.stdout.isatty() else 200).print(table)


@runs_app.command("show")
def runs_show(
    run_id: str = typer.Argument(..., help="A run id (or its unique beginning)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    db: Optional[str] = typer.Option(None, "--db", envvar="ROUTECLI_DB", help="Ledger path or URL."),
) -> None:
    """One run: its counts, cost, the lines that failed and why, and how to resume it."""
    from routecli.store.runs import counts, failed_lines, get_run

    store = _open(db)
    try:
        run = get_run(store, run_id)
        if run is None:
            raise UsageError(f"No run {run_id!r} in the ledger at {store.location}; list them with `routecli runs`")
        info = _run_json(run, counts(store, [run.id])[run.id])
        info["problems"] = [{"line": r.line_no, "id": r.line_id, "status": r.status, "kind": r.error_kind,
                             "message": r.error_message} for r in failed_lines(store, run.id, limit=50)]
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    for key in ("id", "status", "input", "output", "started_at", "finished_at", "lines", "ok", "dry_runs",
                "failed", "invalid", "pending", "attempts", "cost_usd", "unpriced"):
        typer.echo(f"{key:12} {info[key] if info[key] is not None else '-'}")
    for problem in info["problems"]:
        kind = f" [{problem['kind']}]" if problem["kind"] and problem["kind"] != problem["status"] else ""
        typer.echo(f"line {problem['line']} ({problem['id']}): {problem['status']}{kind}: "
                   f"{problem['message'] or 'not finished'}")
    if info["pending"] or info["failed"] or info["invalid"] or run.status != "finished":
        typer.echo(f"resume: routecli batch {_quote(run.input_name)} --resume {run.id}")


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def _open(db: Optional[str]) -> Any:
    from routecli.config import db_location
    from routecli.store import open_store

    return open_store(db_location(db))
