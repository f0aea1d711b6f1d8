"""Progress for `routecli batch` on stderr: a Rich bar on a terminal, a plain line now and then elsewhere.

Only stderr: stdout may be carrying the results. No spinner or cursor trick reaches a pipe.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import TYPE_CHECKING, Any, Callable, Coroutine

if TYPE_CHECKING:
    from routecli.batch.runner import Runner, Tally

PLAIN_EVERY = 10.0  # seconds between plain progress lines; ROUTECLI_PROGRESS_SECONDS overrides


def describe(tally: Tally) -> str:
    """e.g. `1,234/10,000 lines · 98.1/s · ETA 1m29s · 3 errors · $0.012300 · cheap 800, standard 400`"""
    rate = (tally.done - tally.skipped) / tally.elapsed if tally.elapsed > 0 else 0.0
    left = tally.total - tally.done
    parts = [f"{tally.done:,}/{tally.total:,} lines", f"{rate:.1f}/s"]
    if rate > 0 and left > 0:
        parts.append(f"ETA {_duration(left / rate)}")
    failed = tally.failed + tally.invalid
    parts.append(f"{failed:,} error{'s' if failed != 1 else ''}")
    parts.append(f"${tally.cost:.6f}" + (f" (+{tally.unpriced} unpriced)" if tally.unpriced else ""))
    if tally.tiers:
        parts.append(", ".join(f"{tier} {count:,}" for tier, count in tally.tiers.most_common()))
    return " · ".join(parts)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def watcher(stream: Any = None) -> Callable[[Runner], Coroutine[Any, Any, None]]:
    stream = stream or sys.stderr
    if hasattr(stream, "isatty") and stream.isatty() and os.environ.get("TERM") != "dumb":
        return _rich
    every = float(os.environ.get("ROUTECLI_PROGRESS_SECONDS") or PLAIN_EVERY)

    async def plain(runner: Runner) -> None:
        while True:
            await asyncio.sleep(every)
            stream.write(f"batch: {describe(runner.tally)}\n")
            stream.flush()

    return plain


async def _rich(runner: Runner) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    tally = runner.tally
    console = Console(stderr=True)  # honours NO_COLOR by itself
    columns = (BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), TextColumn("{task.fields[status]}"))
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("batch", total=tally.total, completed=tally.done, status="")
        while True:
            status = describe(tally).split(" · ", 1)[1]
            progress.update(task, completed=tally.done, status=status)
            await asyncio.sleep(0.25)
