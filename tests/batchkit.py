"""Helpers for the batch tests: input files, the ledger read back with plain sqlite3, the server's log."""

from __future__ import annotations

import collections
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import fakevendor
from routecli.config import db_location

ROOT = Path(__file__).resolve().parent.parent


def write_prompts(path: Path, items: list[str | dict]) -> Path:
    """One line per item: a dict as JSON, a string as it is (to write broken lines)."""
    with open(path, "w", encoding="utf-8") as fh:
        for item in items:
            fh.write((item if isinstance(item, str) else json.dumps(item)) + "\n")
    return path


def query(sql: str, *params) -> list[sqlite3.Row]:
    """Read the test's ledger directly: what any other program would see on disk."""
    path = db_location()
    if not os.path.exists(path):
        return []
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def attempts(run_id: str | None = None) -> list[sqlite3.Row]:
    if run_id is None:
        return query("SELECT * FROM attempts ORDER BY id")
    return query("SELECT * FROM attempts WHERE run_id = ? ORDER BY id", run_id)


def lines(run_id: str) -> dict[int, sqlite3.Row]:
    return {row["line_no"]: row for row in query("SELECT * FROM run_lines WHERE run_id = ?", run_id)}


def latest_run() -> sqlite3.Row:
    return query("SELECT * FROM runs ORDER BY started_at DESC LIMIT 1")[0]


def sent(root: str) -> collections.Counter:
    """How many requests the fake vendor received per line id (the id is the prompt's first word)."""
    counts: collections.Counter = collections.Counter()
    for entry in fakevendor.requests_log(root):
        text = json.dumps(entry["body"])
        found = re.search(r"\b(id-\d+)\b", text)
        if found:
            counts[found.group(1)] += 1
    return counts


def read_output(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def start_batch(*args: str) -> subprocess.Popen:
    """`routecli batch ...` as a real process (its own pid, signals, exit code)."""
    env = {**os.environ, "ROUTECLI_PROGRESS_SECONDS": "0.2"}
    return subprocess.Popen([sys.executable, "-m", "routecli", "batch", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
