"""The serve benchmarks' own parts: the lean load generator, serve_overhead.py and the ledger benchmarks
end to end, small."""

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import VENDOR_KEY

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def _post(url: str, headers: dict, payloads: list[dict]) -> list[bytes]:
    from lean_http import Connection

    async def run() -> list[bytes]:
        connection = Connection(url, headers)
        try:
            return [await connection.post(json.dumps(payload).encode()) for payload in payloads]
        finally:
            connection.close()

    return asyncio.run(run())


def test_lean_client_reads_whole_answers_on_one_connection(vendor_root):
    words = [{"model": "gpt-5.4-nano", "messages": [{"role": "user", "content": f"hi [[words={n}]]"}]}
             for n in (3, 900, 5)]  # the long one arrives in several reads
    answers = [json.loads(body) for body in _post(vendor_root + "/v1/chat/completions",
                                                   {"authorization": f"Bearer {VENDOR_KEY}"}, words)]
    assert [len(a["choices"][0]["message"]["content"].split()) for a in answers] == [3, 900, 5]


def test_lean_client_refuses_an_error_status(vendor_root):
    with pytest.raises(RuntimeError, match="HTTP 401"):
        _post(vendor_root + "/v1/chat/completions", {"authorization": "Bearer wrong"},
              [{"model": "gpt-5.4-nano", "messages": [{"role": "user", "content": "hi"}]}])


def test_serve_overhead_runs_end_to_end_and_reports_every_path():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "serve_overhead.py"), "--requests", "8", "--rounds", "1",
         "--levels", "1:0.005,4:0.01", "--layouts", "shared", "--answer-words", "20"],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("request by request (same client, same upstream delay) p50") == 2
    assert out.stdout.count("the load generator's CPU per request: direct") == 2
    assert "load generator: lean" in out.stdout


def test_serve_breakdown_stamps_serve_requests_and_prints_the_parts():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "serve_breakdown.py"), "--clients", "2", "--latency", "0.005",
         "--requests", "8", "--rounds", "1"],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "shared, 2 clients, upstream 5 ms: request by request p50" in out.stdout
    assert "serve's clock, 6 requests (2 that opened an upstream connection" in out.stdout  # each client's first
    for part in ("before the call", "writing the call", "after the answer", "writing the response", "all four"):
        assert f"    {part}" in out.stdout


def test_the_delay_proxy_holds_each_way_for_half_the_round_trip(vendor_root):
    import time

    from serve_ledger import start_proxy

    port = int(vendor_root.rsplit(":", 1)[1])
    proxy, proxy_port = start_proxy(port, rtt_ms=200)
    try:
        payload = [{"model": "gpt-5.4-nano", "messages": [{"role": "user", "content": "hi"}]}] * 2
        started = time.perf_counter()
        answers = _post(f"http://127.0.0.1:{proxy_port}/v1/chat/completions",
                        {"authorization": f"Bearer {VENDOR_KEY}"}, payload)
        took = time.perf_counter() - started
    finally:
        proxy.kill()
    assert len(answers) == 2 and took >= 0.4  # two requests, one round trip each (and the connection's)


LEDGERS = ("SQLite", "PostgreSQL here", "PostgreSQL 4 ms away")  # at --rtt-ms 4


def _ledger_bench(script: str, *args: str) -> str:
    """The benchmark's output, run small; skipped where no PostgreSQL server is (unless CI needs one)."""
    import os

    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--rtt-ms", "4", *args],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    if "PostgreSQL skipped" in out.stdout and os.environ.get("ROUTECLI_REQUIRE_PG") != "1":
        pytest.skip("no PostgreSQL server here: only the SQLite half ran")
    return out.stdout


def test_serve_ledger_runs_every_ledger_and_counts_their_rows():
    out = _ledger_bench("serve_ledger.py", "--levels", "4:0.01", "--requests", "8", "--rounds", "1")
    for ledger in LEDGERS:
        for budget in ("off", "on"):
            assert f"{ledger}, budget {budget}: 8 ledger rows for 8 requests" in out, out
    assert out.count("request by request p50") == 6


def test_batch_ledger_runs_every_ledger_and_answers_every_line():
    out = _ledger_bench("batch_ledger.py", "--lines", "12", "--delay", "0.01", "--concurrency", "4")
    for ledger in LEDGERS:
        for budget in ("off", "on"):
            assert re.search(rf"{ledger}, budget {budget} +[\d.]+ s, +\d+ lines a second, 12 answered\n", out), out


@pytest.mark.parametrize("part, n", [("request", "3"), ("score", "1"), ("assess", "1")])
def test_serve_instructions_workloads_run(part, n):
    """What serve_instructions.py counts under valgrind, run plain: each workload completes (valgrind itself
    is not needed here)."""
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "serve_instructions.py"), "--child", part, n],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
