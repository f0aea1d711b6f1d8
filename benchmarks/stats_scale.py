"""`stats` and `export` on a ledger of a million synthetic attempts.

    python benchmarks/stats_scale.py [--rows 1000000] [--db PATH] [--keep]

Builds the ledger through the real migrations, then fills it with one INSERT ... SELECT over a
recursive CTE (indexes dropped first and rebuilt after, as a bulk load would): 90 days of
traffic over 10 models in 3 tiers, ~4% failures, retries, fallbacks and escalations linked by
request_id, ~3% judge calls, ~4% cache hits, tags and agents; then attempt_tags (m008) from it
with m008's own backfill statement, also before its indexes. No ANALYZE, as in real use.

Then prints: the time of `compute_stats` (the whole of `routecli stats` but start-up) for the
default breakdowns, --by model, --by day, --by tag, and a 7-day window, each first run and best
of three; `check_alerts` (what runs after every `ask`) with the synthetic traffic's last day as
the alert window; `routecli stats --json` end to end in a fresh process; what the m006 indexes cost a
writer (10,000 rows into the full ledger, with and without them); and `export --csv` streamed
to a file in a child process: rows/s and its resident memory sampled every 100,000 rows, which
must stay flat. Targets (issue 6): stats under 1 s at 1,000,000 rows; export in constant memory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

START = datetime(2026, 1, 1, tzinfo=timezone.utc)
DAYS = 90
MODELS = [  # tier, provider, model, $ per 1M input tokens, $ per 1M output tokens
    ("cheap", "openai", "gpt-5.4-nano", 0.05, 0.4),
    ("cheap", "gemini", "gemini-3.1-flash-lite", 0.1, 0.4),
    ("cheap", "anthropic", "claude-haiku-4-5", 1.0, 5.0),
    ("cheap", "groq", "openai/gpt-oss-20b", 0.1, 0.5),
    ("standard", "openai", "gpt-5.4-mini", 0.25, 2.0),
    ("standard", "anthropic", "claude-sonnet-5", 3.0, 15.0),
    ("standard", "gemini", "gemini-3.5-flash", 0.3, 2.5),
    ("premium", "anthropic", "claude-opus-5", 5.0, 25.0),
    ("premium", "openai", "gpt-5.5", 1.25, 10.0),
    ("premium", "gemini", "gemini-3.1-pro-preview", 2.0, 12.0),
]
TEXT = ("Explain the difference between a process and a thread, with an example in Python, and say when "
        "each one is the better choice for an IO-bound web scraper. ") * 8


def _pick(values: list) -> str:
    return "CASE m " + " ".join(f"WHEN {i} THEN {v!r}" for i, v in enumerate(values)) + " END"


def fill_sql(rows: int) -> str:
    """One statement: `rows` attempts from three multiplicative hashes of the row number."""
    tier, provider, model, price_in, price_out = (list(column) for column in zip(*MODELS))
    span = DAYS * 86400
    epoch = int(START.timestamp())
    return f"""
    WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {rows - 1}),
    r AS (SELECT i, (i * 2654435761) % 4294967291 AS h1, ((i + 7) * 2246822519) % 4294967279 AS h2,
                 ((i + 13) * 3266489917) % 4294967231 AS h3 FROM n),
    s AS (SELECT i, h1, h2, h3,
        CASE WHEN h1 % 100 < 55 THEN h2 % 4 WHEN h1 % 100 < 85 THEN 4 + h2 % 3 ELSE 7 + h2 % 3 END AS m,
        CASE WHEN h3 % 1000 < 30 THEN 'error' WHEN h3 % 1000 < 35 THEN 'skipped'
             WHEN h3 % 1000 < 45 THEN 'dry-run' ELSE 'ok' END AS status,
        CASE WHEN h2 % 100 < 2 THEN 'retry' WHEN h2 % 100 < 5 THEN 'fallback'
             WHEN h2 % 100 < 8 THEN 'escalation' ELSE 'first' END AS step,
        CASE WHEN h1 % 1000 < 30 THEN 'judge' WHEN h1 % 1000 < 430 THEN 'batch' ELSE 'ask' END AS source,
        h2 % 100 BETWEEN 90 AND 93 AS cached,
        50 + h2 % 4000 AS tin, 10 + h3 % 1500 AS tout
      FROM r)
    INSERT INTO attempts (id, request_id, created_at, source, run_id, prompt_hash, prompt, answer, agent, tags,
        signals, classifier, classifier_version, score, tier, provider, model, reasons, phase, notes, status,
        error_kind, error_message, input_tokens, output_tokens, cached_tokens, reasoning_tokens, ttft_ms,
        latency_ms, cost_micros, baseline_model, baseline_cost_micros, price_source, parent_id, step,
        cache_kind, saved_micros, confidence)
    SELECT printf('01J%023d', i),
        printf('01J%023d', CASE WHEN step != 'first' OR source = 'judge' THEN max(i - 1, 0) ELSE i END),
        strftime('%Y-%m-%dT%H:%M:%S', {epoch} + i * {span} / {rows}, 'unixepoch') || printf('.%06dZ', h1 % 1000000),
        source, CASE WHEN source = 'batch' THEN printf('run%05d', i / 5000) END,
        printf('%064x', h1), substr('{TEXT}', 1 + h2 % 200, 150 + h3 % 200),
        CASE WHEN status = 'ok' THEN substr('{TEXT}', 1 + h3 % 100, 400 + h1 % 300) END,
        CASE h3 % 7 WHEN 0 THEN 'coder' WHEN 1 THEN 'critical' WHEN 2 THEN 'support' END,
        CASE h1 % 5 WHEN 0 THEN '[]' WHEN 1 THEN '["prod"]' WHEN 2 THEN '["prod","team-' || (h2 % 8) || '"]'
             ELSE '["team-' || (h3 % 8) || '"]' END,
        '{{"chars":' || (h2 % 5000) || ',"code":' || (h3 % 2) || ',"domain":"technical","reasoning":' || (h1 % 3) || '}}',
        'learned', 'learned-0123abcd', (h1 % 1000) / 1000.0, {_pick(tier)}, {_pick(provider)}, {_pick(model)},
        '["short prompt -0.30","simple task: what is the -0.30"]', 'learned', '[]', status,
        CASE WHEN status = 'error' THEN 'server' END, CASE WHEN status = 'error' THEN 'HTTP 500 from vendor' END,
        CASE WHEN status = 'ok' THEN tin END, CASE WHEN status = 'ok' THEN tout END,
        CASE WHEN status = 'ok' THEN tin / 4 END, CASE WHEN status = 'ok' THEN tout / 8 END,
        CASE WHEN status = 'ok' AND h1 % 3 THEN 80 + h2 % 900 END,
        CASE WHEN status IN ('ok', 'error') THEN 150 + h1 % 4000 + (h2 % 100) * (h3 % 100) END,
        CASE WHEN status = 'ok' AND h3 % 100 != 1 THEN CASE WHEN step = 'first' AND cached THEN 0
             ELSE CAST(tin * ({_pick(price_in)}) + tout * ({_pick(price_out)}) AS INTEGER) END END,
        'anthropic:claude-opus-5', CASE WHEN status = 'ok' THEN tin * 5 + tout * 25 END, 'genai-prices',
        CASE WHEN step != 'first' THEN printf('01J%023d', max(i - 1, 0)) END, step,
        CASE WHEN status = 'ok' AND step = 'first' AND cached THEN CASE WHEN h1 % 2 THEN 'exact' ELSE 'similar' END END,
        CASE WHEN status = 'ok' AND step = 'first' AND cached THEN tin + tout * 5 END,
        CASE WHEN status = 'ok' THEN 0.3 + (h3 % 700) / 1000.0 END
    FROM s
    """


def build(path: Path, rows: int) -> None:
    from routecli.store import open_store
    from routecli.store.schema_later import ATTEMPT_TAGS_BACKFILL_SQLITE

    open_store(path).close()  # every migration, so the schema and indexes are the real ones
    db = sqlite3.connect(path, isolation_level=None)
    indexes = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                         "AND tbl_name IN ('attempts', 'attempt_tags') AND sql IS NOT NULL").fetchall()
    for name, _ in indexes:
        db.execute(f"DROP INDEX {name}")
    started = time.perf_counter()
    db.execute("BEGIN")
    db.execute(fill_sql(rows))
    db.execute("COMMIT")
    filled = time.perf_counter()
    db.execute("BEGIN")
    db.execute(ATTEMPT_TAGS_BACKFILL_SQLITE)  # what m008 does to an existing ledger
    db.execute("COMMIT")
    tagged = time.perf_counter()
    for _, sql in indexes:
        db.execute(sql)
    db.close()
    done = time.perf_counter()
    size = path.stat().st_size / 2**20
    tag_rows = sqlite3.connect(path).execute("SELECT COUNT(*) FROM attempt_tags").fetchone()[0]
    print(f"built {rows:,} attempts in {filled - started:.1f} s, their {tag_rows:,} tag rows in "
          f"{tagged - filled:.1f} s, indexes in {done - tagged:.1f} s; file {size:,.0f} MB")


def time_stats(path: Path) -> None:
    from routecli.analytics.stats import compute_stats
    from routecli.store import open_store

    end = START + timedelta(days=DAYS)
    cases = [
        ("stats (totals, by tier, by model)", {}),
        ("stats --by model", {"by": ["model"]}),
        ("stats --by day", {"by": ["day"]}),
        ("stats --by tag", {"by": ["tag"]}),
        ("stats --by agent", {"by": ["agent"]}),
        ("stats --since 7d (tier, model)", {"since": end - timedelta(days=7)}),
    ]
    print(f"\n{'compute_stats':<36} {'first':>8} {'best of 3':>10}")
    with open_store(path) as store:
        for label, kwargs in cases:
            runs = []
            for _ in range(3):
                started = time.perf_counter()
                report = compute_stats(store, **kwargs)
                runs.append(time.perf_counter() - started)
            print(f"{label:<36} {runs[0]:>7.2f}s {min(runs):>9.2f}s")
        totals = report["totals"]
    print(f"(last window: {totals['requests']:,} requests, p50 {totals['latency_ms']['p50']} ms)")
    time_alerts(path, end)
    env = {**os.environ, "ROUTECLI_DB": str(path), "NO_COLOR": "1"}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "routecli", "stats", "--json"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    print(f"{'routecli stats --json, new process':<36} {time.perf_counter() - started:>7.2f}s  (start-up included)")


def time_alerts(path: Path, end: datetime) -> None:
    """check_alerts with the default [alerts] rules, as after an `ask` at the end of the traffic."""
    from types import SimpleNamespace

    from routecli.analytics.alerts import check_alerts
    from routecli.config import AlertConfig
    from routecli.store import open_store

    config = SimpleNamespace(alerts=AlertConfig(), guards=None)
    with open_store(path) as store:
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            check_alerts(store, config, now=end)  # the first run may record alerts; then none are new
            runs.append(time.perf_counter() - started)
    print(f"{'check_alerts (24 h window)':<36} {runs[0]:>7.2f}s {min(runs):>9.2f}s")


def time_writes(path: Path, rows: int = 10_000) -> None:
    """What a writer pays for the stats indexes: one transaction of `rows` inserts, then without m006's."""
    db = sqlite3.connect(path, isolation_level=None)
    columns = [row[1] for row in db.execute("PRAGMA table_info(attempts)")]
    template = db.execute("SELECT * FROM attempts WHERE status = 'ok' LIMIT 1").fetchone()
    id_at = columns.index("id")

    def insert(tag: str) -> float:
        batch = [tuple(f"zz{tag}{i:08d}" if j == id_at else value for j, value in enumerate(template))
                 for i in range(rows)]
        started = time.perf_counter()
        db.execute("BEGIN")
        db.executemany(f"INSERT INTO attempts VALUES ({', '.join('?' * len(columns))})", batch)
        db.execute("COMMIT")
        return time.perf_counter() - started

    with_all = insert("a")
    m006 = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND "
                                           "(name = 'ix_attempts_cube' OR name LIKE 'ix_attempts_latency_%' OR "
                                           "name LIKE 'ix_attempts_ttft_%' OR name = 'ix_attempts_followups') "
                                           "AND name NOT LIKE '%untagged'")]
    for name in m006:
        db.execute(f"DROP INDEX {name}")
    without = insert("b")
    db.close()
    print(f"\nwriting {rows:,} attempts in one transaction into the full ledger: {with_all * 1e6 / rows:.0f} µs/row "
          f"with the {len(m006)} m006 indexes, {without * 1e6 / rows:.0f} µs/row without them")


def export_child(db: str, out: str) -> None:
    """Runs in its own process: stream the CSV, sampling resident memory every 100,000 rows."""
    from routecli.analytics.export import iter_rows, write_csv
    from routecli.store import open_store

    samples = []

    def sampled(rows):
        for count, row in enumerate(rows, 1):
            if count % 100_000 == 0:
                samples.append((count, _rss_mb()))
            yield row

    with open_store(db) as store, open(out, "w", encoding="utf-8", newline="") as fh:
        started = time.perf_counter()
        count = write_csv(sampled(iter_rows(store, json_text=True)), fh)  # as `export --csv` does
        wall = time.perf_counter() - started
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": count, "wall": wall, "samples": samples, "peak_mb": peak}))


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def time_export(path: Path, out: Path) -> None:
    result = subprocess.run([sys.executable, __file__, "--export-child", str(path), str(out)],
                            capture_output=True, text=True, check=True)
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    size = out.stat().st_size / 2**20
    print(f"\nexport --csv: {figures['rows']:,} rows, {size:,.0f} MB in {figures['wall']:.1f} s "
          f"({figures['rows'] / figures['wall']:,.0f} rows/s); peak RSS {figures['peak_mb']:.0f} MB")
    print("RSS by rows written: " + ", ".join(f"{n // 1000}k {mb:.0f} MB" for n, mb in figures["samples"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, help="reuse (or build) this ledger instead of a temporary one")
    parser.add_argument("--keep", action="store_true", help="keep the temporary ledger")
    parser.add_argument("--no-export", action="store_true")
    parser.add_argument("--export-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_child:
        return export_child(*args.export_child)
    work = Path(tempfile.mkdtemp(prefix="routecli-stats-"))
    path = args.db or work / "ledger.db"
    try:
        if not path.exists():
            build(path, args.rows)
        time_stats(path)
        if not args.no_export:
            time_export(path, work / "export.csv")
        if not args.db:
            time_writes(path)  # last: it adds rows and drops indexes, so never on a ledger given with --db
    finally:
        if args.keep and not args.db:
            (work / "export.csv").unlink(missing_ok=True)
            print(f"\nledger kept at {path}")
        else:
            shutil.rmtree(work, ignore_errors=True)  # with --db, only the export file was in here


if __name__ == "__main__":
    main()
