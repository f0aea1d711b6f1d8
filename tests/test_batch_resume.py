"""Killing `routecli batch` (a real process) and resuming it: every line answered and paid once."""

from __future__ import annotations

import shlex
import signal
import sqlite3
import sys
import threading
import time
from collections import Counter

import pytest
from typer.testing import CliRunner

import fakevendor
from batchkit import attempts, latest_run, lines, query, read_output, sent, start_batch, write_prompts
from conftest import VENDOR_KEY
from routecli.cli import app

runner = CliRunner()
CONCURRENCY = 4


def slow_prompts(tmp_path, count, delay):
    items = [{"id": f"id-{i}", "prompt": f"id-{i} please answer [[delay={delay}]]"} for i in range(count)]
    return write_prompts(tmp_path / "in.jsonl", items)


def wait_for_finished_lines(at_least: int, process, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            found = query("SELECT COUNT(*) FROM run_lines WHERE status = 'ok'")
        except sqlite3.OperationalError:  # the child is still creating the ledger
            found = []
        if found and found[0][0] >= at_least:
            return
        time.sleep(0.02)
    raise AssertionError("the batch made no progress")


def ok_ids() -> set[str]:
    return {row["line_id"] for row in query("SELECT line_id FROM run_lines WHERE status = 'ok'")}


def assert_each_line_once(run_id: str, out, count: int) -> None:
    results = read_output(out)
    assert [r["id"] for r in results] == [f"id-{i}" for i in range(count)]  # none missing, none twice, in order
    assert {r["status"] for r in results} == {"ok"}
    ok_attempts = [a for a in attempts(run_id) if a["status"] == "ok"]
    per_line = Counter(a["prompt"].split()[0] for a in ok_attempts)
    assert len(per_line) == count and set(per_line.values()) == {1}  # exactly one paid answer per line
    by_attempt = {a["id"]: a for a in ok_attempts}
    for result, row in zip(results, sorted(lines(run_id).values(), key=lambda r: r["line_no"])):
        assert result["answer"] == by_attempt[row["attempt_id"]]["answer"]  # output agrees with the ledger


@pytest.mark.parametrize("kill_after", [3, 20])
def test_sigkill_at_any_moment_then_resume_answers_every_line_once(vendor, tmp_path, kill_after):
    count = 32
    path, out = slow_prompts(tmp_path, count, 0.1), tmp_path / "out.jsonl"
    process = start_batch(str(path), "--output", str(out), "--concurrency", str(CONCURRENCY))
    wait_for_finished_lines(kill_after, process)
    process.kill()
    process.communicate()
    finished_before = ok_ids()
    resumed = runner.invoke(app, ["batch", str(path), "--resume", "--concurrency", str(CONCURRENCY)])
    assert resumed.exit_code == 0, resumed.output
    requests = sent(vendor)
    assert set(requests) == {f"id-{i}" for i in range(count)}
    assert all(requests[line] == 1 for line in finished_before)  # a finished line is never sent again
    resent = {line for line, n in requests.items() if n > 1}
    assert len(resent) <= CONCURRENCY  # only what was in flight at the kill
    assert_each_line_once(latest_run()["id"], out, count)


def test_sigint_drains_records_in_flight_and_prints_the_resume_command(vendor, tmp_path):
    count = 24
    path, out = slow_prompts(tmp_path, count, 0.3), tmp_path / "out.jsonl"
    process = start_batch(str(path), "-o", str(out), "-c", str(CONCURRENCY))
    wait_for_finished_lines(2, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 130, stderr
    assert "stopping: waiting for" in stderr
    run_id = latest_run()["id"]
    # drained: every request the server saw was answered and recorded, none abandoned
    assert len(attempts(run_id)) == sum(sent(vendor).values())
    assert {a["status"] for a in attempts(run_id)} == {"ok"}
    assert latest_run()["status"] == "interrupted"
    assert len(read_output(out)) == len(attempts(run_id)) < count  # the file holds what is done so far
    command = stderr.split("resume with: ")[1].splitlines()[0]
    assert command.startswith("routecli batch ") and f"--resume {run_id}" in command
    resumed = runner.invoke(app, shlex.split(command)[1:])
    assert resumed.exit_code == 0, resumed.output
    assert set(sent(vendor).values()) == {1}  # nothing was sent twice
    assert_each_line_once(run_id, out, count)


def test_plain_progress_lines_when_not_a_terminal(vendor, tmp_path):
    process = start_batch(str(slow_prompts(tmp_path, 8, 0.15)), "-c", "2")
    stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    progress = [line for line in stderr.splitlines() if line.startswith("batch: ")]
    assert progress and "/8 lines" in progress[0] and "\x1b" not in stderr
    assert len(stdout.splitlines()) == 8


def test_a_provider_going_down_mid_batch_loses_no_line(tmp_path, isolated_home, monkeypatch):
    root, server = fakevendor.start_server(key=VENDOR_KEY)
    port = int(root.rsplit(":", 1)[1])
    (isolated_home / "config.toml").write_text(f'[providers.openai]\nbase_url = "{root}/v1"\n')
    monkeypatch.setenv("OPENAI_API_KEY", VENDOR_KEY)
    count = 20
    items = [{"id": f"id-{i}", "prompt": f"id-{i} hi [[delay=0.1]]", "model": "openai:gpt-5.4-nano"}
             for i in range(count)]
    path, out = write_prompts(tmp_path / "in.jsonl", items), tmp_path / "out.jsonl"
    threading.Timer(0.5, fakevendor.stop_server, [server]).start()
    try:
        first = runner.invoke(app, ["batch", str(path), "-o", str(out), "-c", "2", "--max-retries", "1",
                                    "--backoff", "0.05"])
        assert first.exit_code == 1, first.output
        results = read_output(out)
        assert len(results) == count  # every line accounted for: answered, or failed with its reason
        failed = [r for r in results if r["status"] == "error"]
        ok_before = {r["id"] for r in results if r["status"] == "ok"}
        assert failed and ok_before
        assert all(r["error"]["kind"] in ("connection", "stream_cut", "timeout") for r in failed)
        root, server = fakevendor.start_server(key=VENDOR_KEY, port=port)  # back up, same address
        second = runner.invoke(app, ["batch", str(path), "--resume"])
        assert second.exit_code == 0, second.output
        assert not ok_before & set(sent(root))  # the new server never saw a line that was done
        assert {r["status"] for r in read_output(out)} == {"ok"}
    finally:
        fakevendor.stop_server(server)


@pytest.mark.skipif(sys.platform != "linux", reason="uses /proc to find the child")
def test_resume_refuses_while_the_run_is_alive(vendor, tmp_path):
    path = slow_prompts(tmp_path, 12, 0.3)
    process = start_batch(str(path), "-c", "1")
    try:
        wait_for_finished_lines(1, process)
        again = runner.invoke(app, ["batch", str(path), "--resume"])
        assert again.exit_code == 2 and "is still running" in again.stderr
    finally:
        process.kill()
        process.communicate()
