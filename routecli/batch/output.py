"""The results JSONL, made from the ledger: one line per recorded input line, in input order by default.

Written whole to a temporary file beside the target and renamed over it, so the file is
always either the previous complete version or the new one, never half of each.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from routecli.pricing import format_usd, from_micros
from routecli.store import Store
from routecli.store.runs import result_rows


def result_line(row: Any) -> dict[str, Any]:
    tokens = None
    if row.input_tokens is not None or row.output_tokens is not None:
        tokens = {"input": row.input_tokens, "output": row.output_tokens,
                  "cached": row.cached_tokens, "reasoning": row.reasoning_tokens}
    failed = row.status not in ("ok", "dry-run") and row.error_kind
    return {
        "id": row.line_id,
        "line": row.line_no,
        "status": row.status,
        "answer": row.answer if row.answer is not None else row.kept_answer,
        "tier": row.tier,
        "provider": row.provider,
        "model": row.model,
        "reasons": row.reasons or [],
        "tokens": tokens,
        "cost_usd": format_usd(from_micros(row.cost_micros)),
        "latency_ms": None if row.latency_ms is None else round(row.latency_ms, 1),
        "attempts": row.attempts,
        "error": {"kind": row.error_kind, "message": row.error_message} if failed else None,
    }


def dump(store: Store, run_id: str, stream: TextIO, *, order: str = "input") -> int:
    count = 0
    for row in result_rows(store, run_id, order=order):
        stream.write(json.dumps(result_line(row), ensure_ascii=False) + "\n")
        count += 1
    return count


def write_results(store: Store, run_id: str, target: Path | None, *, order: str = "input") -> int:
    """Every recorded line to `target` (atomically) or to stdout; returns how many."""
    if target is None:
        count = dump(store, run_id, sys.stdout, order=order)
        sys.stdout.flush()
        return count
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            count = dump(store, run_id, handle, order=order)
            handle.flush()
            os.fsync(handle.fileno())  # on disk before the rename makes it the results file
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return count
