"""One `routecli batch` session: find or start the run, run it, write the results, close the run.

The order of the last steps matters for a kill at any moment: the results file is written
(atomically) before the run is marked finished, and a run not marked finished is always
resumable, so a resume rewrites a file a kill may have left stale.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shlex
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Coroutine

from routecli.batch.runner import BatchOptions, Runner, Tally
from routecli.batch.source import BatchInput
from routecli.errors import UsageError
from routecli.store import new_id, utcnow
from routecli.store import runs as ledger
from routecli.store.runs import Run

if TYPE_CHECKING:
    from routecli.config import Config
    from routecli.keys import KeyRing
    from routecli.store import Store


@dataclass
class Session:
    run: Run
    resumed: bool
    skip: set[int]  # line numbers already finished
    output: Path | None  # None: stdout

    @property
    def complete(self) -> bool:
        return self.run.status == "finished" and len(self.skip) >= self.run.total_lines


def open_session(store: Store, source: BatchInput, *, resume: bool, run_id: str | None,
                 output: Path | None, dry_run: bool) -> tuple[Session, list[str]]:
    """The run to work on, and notes for the user; refuses (UsageError) before writing anything."""
    notes: list[str] = []
    if not resume:
        unfinished = _resumable(store, source)
        if unfinished:
            notes.append(f"run {unfinished.id} of this input is unfinished; "
                         f"`routecli batch {shlex.quote(source.name)} --resume` would continue it instead")
        now = utcnow()
        run = Run(new_id(), source.name, source.sha256, source.total, _text(output), dry_run, "running",
                  None, None, now, now, None)
        ledger.create_run(store, run)
        return Session(run, False, set(), output), notes
    run = _find(store, source, run_id)
    if dry_run and not run.dry_run:
        raise UsageError(f"Run {run.id} calls models; resume it without --dry-run")
    _refuse_if_running(run)
    if output is None and run.output_path:
        output = Path(run.output_path)
        notes.append(f"results go to {output}, as when the run started")
    return Session(run, True, ledger.finished_lines(store, run.id), output), notes


def _find(store: Store, source: BatchInput, run_id: str | None) -> Run:
    if run_id is None:
        run = _resumable(store, source)
        if run is None:
            raise UsageError(f"Nothing to resume: no unfinished run of this content of {source.name}; "
                             "run it without --resume, or name a run with --resume RUN_ID (see `routecli runs`)")
        return run
    run = ledger.get_run(store, run_id)
    if run is None:
        raise UsageError(f"No run {run_id!r} in the ledger at {store.location}; list the runs with `routecli runs`")
    if run.input_hash != source.sha256:
        raise UsageError(f"Run {run.id} was started on other input ({run.input_name}, content changed since?); "
                         "resume it with the same file, or start a new run without --resume")
    return run


def _resumable(store: Store, source: BatchInput) -> Run | None:
    """The newest run of this exact input that is not finished, or finished with lines to retry."""
    candidates = ledger.runs_for_input(store, source.sha256)
    if not candidates:
        return None
    counts = ledger.counts(store, [run.id for run in candidates])
    for run in candidates:
        if run.status != "finished" or counts[run.id].finished < run.total_lines:
            return run
    return None


def _refuse_if_running(run: Run) -> None:
    if run.status != "running" or run.pid is None or run.host != socket.gethostname() or run.pid == os.getpid():
        return
    try:
        os.kill(run.pid, 0)
    except ProcessLookupError:
        return  # killed: exactly the case resume is for
    except PermissionError:
        pass
    raise UsageError(f"Run {run.id} is still running (pid {run.pid}); wait for it or stop it before resuming, "
                     "or two processes would send the same lines")


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path.resolve())


def execute(config: Config, keys: KeyRing, store: Store, source: BatchInput, session: Session,
            options: BatchOptions, *, notify: Callable[[str, str], None],
            watch: Callable[[Runner], Coroutine[Any, Any, None]] | None = None) -> Runner:
    """Run every unfinished line; `watch` runs beside it (progress display) and is cancelled after."""
    from routecli.loops import event_loop

    loop_factory = event_loop(options.loop)[0]
    ledger.start_session(store, session.run.id, pid=os.getpid(), host=socket.gethostname(),
                         output_path=_text(session.output))
    tally = Tally(total=session.run.total_lines, skipped=len(session.skip))
    committer = ledger.Committer(store)
    runner = Runner(config, keys, store, session.run.id, options, tally, notify=notify, commit=committer)

    async def main() -> None:
        watcher = asyncio.get_running_loop().create_task(watch(runner)) if watch else None
        try:
            await runner.run(source.lines(), session.skip)
        finally:
            if watcher:
                watcher.cancel()

    # What exists now lives as long as the run; without this every full collection
    # (a stop-the-world pause for all requests in flight) walks it again.
    gc.freeze()
    try:
        with asyncio.Runner(loop_factory=loop_factory) as on_loop:
            on_loop.run(main())
    finally:
        gc.unfreeze()  # in a longer-lived process (tests) the objects may go when they are done
        committer.close()
    return runner


def finish(store: Store, session: Session, runner: Runner | None, *, save_text: bool, order: str = "input") -> str:
    """Write the results, then close the run; returns its status."""
    from routecli.batch.output import write_results

    run_id = session.run.id
    write_results(store, run_id, session.output, order=order)
    interrupted = runner is not None and runner.interrupted
    done = ledger.counts(store, [run_id])[run_id].finished >= session.run.total_lines
    status = "interrupted" if interrupted and not done else "finished"
    ledger.close_run(store, run_id, status, clear_answers=done and not save_text)
    return status


def resume_command(source: BatchInput, session: Session, db: str | None) -> str:
    parts = ["routecli", "batch", source.name, "--resume", session.run.id]
    if session.output is not None:
        parts += ["--output", str(session.output)]
    if db:
        parts += ["--db", db]
    command = " ".join(shlex.quote(part) for part in parts)
    return command + (" < THE-SAME-INPUT" if source.name == "-" else "")
