"""`routecli batch` in-process against the real fake vendor: results, ledger rows, retries, bad lines, runs."""

from __future__ import annotations

import json
import time

import pytest
from typer.testing import CliRunner

from batchkit import attempts, latest_run, lines, query, read_output, sent, write_prompts
from conftest import VENDOR_KEY
from routecli.cli import app

runner = CliRunner()


def batch(*args: str, input: str | None = None):
    return runner.invoke(app, ["batch", *args], input=input)


def prompts(tmp_path, texts, name="in.jsonl"):
    """Line i has id "id-i" and a prompt starting with it (so the server's log tells lines apart);
    a (text, fields) pair adds fields such as a forced tier."""
    items = []
    for i, text in enumerate(texts):
        text, extra = text if isinstance(text, tuple) else (text, {})
        items.append({"id": f"id-{i}", "prompt": f"id-{i} {text}", **extra})
    return write_prompts(tmp_path / name, items)


def test_answers_every_line_in_input_order_with_one_ledger_row_each(vendor, tmp_path):
    texts = ["What is the capital of France?", ("Prove it", {"tier": "premium"}), "hello there"]
    texts += [f"slow one [[delay=0.{9 - i}]]" for i in range(3)]  # finishing out of order
    out = tmp_path / "out.jsonl"
    result = batch(str(prompts(tmp_path, texts)), "--output", str(out), "-c", "4")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # with --output, stdout stays empty
    results = read_output(out)
    assert [r["id"] for r in results] == [f"id-{i}" for i in range(6)]
    assert {r["status"] for r in results} == {"ok"}
    first = results[0]
    assert first["answer"] == "echo: id-0 What is the capital of France?"
    assert first["tier"] and first["provider"] and first["model"] and first["reasons"]
    assert first["tokens"]["input"] == 7 and float(first["cost_usd"]) > 0 and first["latency_ms"] > 0
    assert results[1]["tier"] == "premium" and results[1]["reasons"] == ["forced by --tier premium"]
    run = latest_run()
    rows = attempts(run["id"])
    assert len(rows) == 6 and {r["status"] for r in rows} == {"ok"} and {r["source"] for r in rows} == {"batch"}
    assert {r["line_id"]: r["attempt_id"] for r in lines(run["id"]).values()} == {
        r["id"]: a["id"] for r, a in zip(results, sorted(rows, key=lambda a: int(a["prompt"].split()[0][3:])))}
    assert run["status"] == "finished" and run["finished_at"] and len(run["input_hash"]) == 64
    assert f"run {run['id']}: 6 ok, 0 failed of 6 lines" in result.stderr
    done_order = tmp_path / "done.jsonl"
    again = batch(str(prompts(tmp_path, texts, "again.jsonl")), "-o", str(done_order), "-c", "6", "--order", "done")
    assert again.exit_code == 0, again.output
    assert [r["id"] for r in read_output(done_order)][-3:] == ["id-5", "id-4", "id-3"]  # slowest last


def test_stdout_carries_only_results(vendor, tmp_path):
    result = batch(str(prompts(tmp_path, ["one", "two", "three"])))
    assert result.exit_code == 0, result.output
    parsed = [json.loads(line) for line in result.stdout.splitlines()]
    assert [p["id"] for p in parsed] == ["id-0", "id-1", "id-2"]
    assert "results: stdout" in result.stderr


def test_stdin_input(vendor, tmp_path):
    text = "\n".join(json.dumps({"id": f"s{i}", "prompt": f"from stdin {i}"}) for i in range(3))
    result = batch("-", input=text)
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["s0", "s1", "s2"]
    assert latest_run()["input_name"] == "-"


def test_bad_lines_are_reported_recorded_and_the_rest_goes_on(vendor, tmp_path):
    path = write_prompts(tmp_path / "in.jsonl", [
        {"id": "good", "prompt": "fine"},
        "not json at all",
        {"id": "noprompt", "system": "x"},
        {"id": "gold", "prompt": "hi", "tier": "gold"},
        {"id": "nowhere", "prompt": "hi", "model": "nowhere:x"},
        {"id": "empty", "prompt": "   "},
        {"id": "good2", "prompt": "also fine"},
    ])
    out = tmp_path / "out.jsonl"
    result = batch(str(path), "-o", str(out))
    assert result.exit_code == 1
    for number, fragment in ((2, "not valid JSON"), (3, '"prompt"'), (4, "Unknown tier 'gold'"),
                             (5, "Unknown provider 'nowhere'"), (6, "Empty prompt")):
        assert f"error: line {number}: " in result.stderr and fragment in result.stderr
    run = latest_run()
    by_line = lines(run["id"])
    assert [by_line[n]["status"] for n in range(1, 8)] == ["ok"] + ["invalid"] * 5 + ["ok"]
    assert all(by_line[n]["attempt_id"] is None and by_line[n]["attempts"] == 0 for n in range(2, 7))
    assert len(attempts(run["id"])) == 2  # no fake decision for a line that was never routed
    assert [r["status"] for r in read_output(out)] == ["ok"] + ["invalid"] * 5 + ["ok"]
    assert "5 failed (invalid 5)" in result.stderr
    assert batch(str(path), "-o", str(out), "--allow-errors").exit_code == 0


def test_retries_recover_and_every_attempt_is_recorded(vendor, tmp_path):
    texts = ["flaky [[status=503 times=2]]", "limited [[status=429 retry_after=0.3 times=1]]",
             "fine", "dropped [[drop times=1]]"]
    out = tmp_path / "out.jsonl"
    started = time.monotonic()
    result = batch(str(prompts(tmp_path, texts)), "-o", str(out), "--backoff", "0.05", "-c", "4")
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started >= 0.3  # Retry-After was honoured
    results = {r["id"]: r for r in read_output(out)}
    assert [results[f"id-{i}"]["attempts"] for i in range(4)] == [3, 2, 1, 2]
    assert all(r["status"] == "ok" and r["error"] is None for r in results.values())
    rows = attempts(latest_run()["id"])
    kinds = sorted(r["error_kind"] for r in rows if r["status"] == "error")
    assert kinds == ["connection", "rate_limit", "server", "server"]
    assert len({r["request_id"] for r in rows}) == 4  # a line's attempts are linked
    assert sent(vendor) == {"id-0": 3, "id-1": 2, "id-2": 1, "id-3": 2}


def test_cut_streams_are_retried_with_stream(vendor, tmp_path):
    out = tmp_path / "out.jsonl"
    result = batch(str(prompts(tmp_path, ["cut me [[cut times=1]]"])), "-o", str(out), "--stream", "--backoff", "0")
    assert result.exit_code == 0, result.output
    [line] = read_output(out)
    assert line["status"] == "ok" and line["attempts"] == 2 and line["answer"] == "echo: id-0 cut me"
    assert [r["error_kind"] for r in attempts()] == ["stream_cut", None]


@pytest.mark.parametrize("directive, kind", [("status=401", "auth"), ("status=404", "not_found"),
                                             ("status=400", "bad_request")])
def test_what_retrying_cannot_fix_is_tried_once(vendor, tmp_path, directive, kind):
    out = tmp_path / "out.jsonl"
    result = batch(str(prompts(tmp_path, [f"no [[{directive}]]", "yes"])), "-o", str(out), "--backoff", "0")
    assert result.exit_code == 1
    bad, good = read_output(out)
    assert (bad["status"], bad["error"]["kind"], bad["attempts"]) == ("error", kind, 1)
    assert good["status"] == "ok"
    assert sent(vendor)["id-0"] == 1
    assert "to retry the failed lines: routecli batch" in result.stderr


def test_a_line_that_keeps_failing_ends_failed_with_its_reason_and_resume_retries_only_it(vendor, tmp_path):
    path = prompts(tmp_path, [("down [[status=503]]", {"model": "openai:gpt-5.4-nano"}), "fine", "also fine"])
    out = tmp_path / "out.jsonl"
    first = batch(str(path), "-o", str(out), "--max-retries", "2", "--backoff", "0")
    assert first.exit_code == 1
    failed = read_output(out)[0]
    assert failed["status"] == "error" and failed["error"]["kind"] == "server" and failed["attempts"] == 3
    again = batch(str(path), "--resume", "--max-retries", "0")
    assert again.exit_code == 1
    assert "results go to" in again.stderr  # the run remembers its output file
    assert sent(vendor) == {"id-0": 4, "id-1": 1, "id-2": 1}
    assert read_output(out)[0]["attempts"] == 4 and len(read_output(out)) == 3


def test_rate_limit_from_config_paces_requests(vendor, isolated_home, tmp_path):
    with open(isolated_home / "config.toml", "a") as fh:
        fh.write("rpm = 600\n")  # appended to the last provider table: gemini, 10 requests/s
    texts = [f"pace {i}" for i in range(14)]
    lines_ = [{"id": f"id-{i}", "prompt": f"id-{i} {t}", "model": "gemini:gemini-3.1-flash-lite"}
              for i, t in enumerate(texts)]
    started = time.monotonic()
    result = batch(str(write_prompts(tmp_path / "in.jsonl", lines_)), "-c", "14")
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started >= 0.35  # 10 at once, then 10/s: the last 4 wait ~0.4 s


def test_dry_run_routes_records_and_calls_nothing(vendor, tmp_path):
    out = tmp_path / "out.jsonl"
    texts = [("What is 2+2?", {"tier": "cheap"}), ("Prove it", {"tier": "premium"})]
    result = batch(str(prompts(tmp_path, texts)), "--dry-run", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert [(r["status"], r["tier"]) for r in read_output(out)] == [("dry-run", "cheap"), ("dry-run", "premium")]
    assert sent(vendor) == {} and {r["status"] for r in attempts()} == {"dry-run"}


def test_group_commit_uses_few_small_transactions(vendor, tmp_path):
    # 96 answers arriving in two waves of 48: even on a busy machine some must share a commit
    result = batch(str(prompts(tmp_path, ["q [[delay=0.05]]" for _ in range(96)])), "-o",
                   str(tmp_path / "o.jsonl"), "-c", "48")
    assert result.exit_code == 0, result.output
    transactions = int(result.stderr.split(" transactions")[0].rsplit(" ", 1)[1])
    assert 3 <= transactions < 96


def test_no_key_in_ledger_output_or_messages(vendor, tmp_path, monkeypatch):
    out = tmp_path / "out.jsonl"
    assert batch(str(prompts(tmp_path, ["a", "b"])), "-o", str(out)).exit_code == 0
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-secret-123456")
    wrong = batch(str(prompts(tmp_path, ["c"], "in2.jsonl")), "-o", str(tmp_path / "o2.jsonl"))
    assert wrong.exit_code == 1 and "sk-wrong-secret-123456" not in wrong.output
    from routecli.config import db_location

    for blob in (open(db_location(), "rb").read(), out.read_bytes(), (tmp_path / "o2.jsonl").read_bytes()):
        assert VENDOR_KEY.encode() not in blob and b"sk-wrong-secret" not in blob


def test_unknown_price_is_null_with_one_warning(vendor, isolated_home, tmp_path):
    with open(isolated_home / "config.toml", "a") as fh:
        fh.write('[tiers.cheap]\nmodels = ["openai:my-finetune-7"]\n')
    out = tmp_path / "out.jsonl"
    result = batch(str(prompts(tmp_path, ["a", "b", "c"])), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert result.stderr.count("No price known for openai:my-finetune-7") == 1
    assert [r["cost_usd"] for r in read_output(out)] == [None, None, None]
    assert "(+3 unpriced)" in result.stderr


def test_save_text_off_keeps_answers_out_of_the_ledger(vendor, isolated_home, tmp_path):
    with open(isolated_home / "config.toml", "a") as fh:
        fh.write("[store]\nsave_text = false\n")
    out = tmp_path / "out.jsonl"
    assert batch(str(prompts(tmp_path, ["secret plans"])), "-o", str(out)).exit_code == 0
    assert read_output(out)[0]["answer"] == "echo: id-0 secret plans"
    assert query("SELECT answer, prompt FROM attempts")[0][:] == (None, None)
    assert query("SELECT answer FROM run_lines")[0]["answer"] is None  # kept only until the run finished


@pytest.mark.parametrize("args, fragment", [
    (["/no/such/file.jsonl"], "Cannot read /no/such/file.jsonl"),
    (["IN", "--concurrency", "0"], "--concurrency must be between 1"),
    (["IN", "-o", "/no/such/dir/out.jsonl"], "does not exist"),
    (["IN", "-o", "IN"], "--output is the input file"),
    (["IN", "SOMERUN"], "goes with --resume"),
    (["EMPTY"], "has no lines"),
    (["IN", "--order", "random"], "--order must be one of"),
])
def test_bad_command_input_is_one_line_exit_2_and_records_nothing(tmp_path, args, fragment):
    path = write_prompts(tmp_path / "in.jsonl", [{"id": "1", "prompt": "hi"}])
    (tmp_path / "empty.jsonl").write_text("\n\n")
    args = [str(path) if a == "IN" else str(tmp_path / "empty.jsonl") if a == "EMPTY" else a for a in args]
    result = batch(*args)
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr and result.stderr.count("\n") == 1 and result.stdout == ""
    assert query("SELECT * FROM runs") == []


@pytest.mark.parametrize("setting, loop", [(None, "uvloop"), ("asyncio", "asyncio")])
def test_batch_runs_on_uvloop_unless_routecli_loop_says_asyncio(vendor, tmp_path, monkeypatch, setting, loop):
    import asyncio

    from routecli.batch.runner import Runner

    pytest.importorskip("uvloop")  # a dependency wherever it builds (not on Windows)
    if setting:
        monkeypatch.setenv("ROUTECLI_LOOP", setting)
    seen, run = [], Runner.run

    async def spy(self, *args, **kwargs):
        seen.append(type(asyncio.get_running_loop()).__module__.split(".")[0])
        return await run(self, *args, **kwargs)

    monkeypatch.setattr(Runner, "run", spy)
    out = tmp_path / "out.jsonl"
    result = batch(str(prompts(tmp_path, ["one", "two"])), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert seen == [loop] and [r["answer"] for r in read_output(out)] == ["echo: id-0 one", "echo: id-1 two"]


def test_a_bad_routecli_loop_is_one_line_exit_2_and_records_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("ROUTECLI_LOOP", "trio")
    result = batch(str(write_prompts(tmp_path / "in.jsonl", [{"id": "1", "prompt": "hi"}])))
    assert result.exit_code == 2, result.output
    assert "unknown event loop 'trio'" in result.stderr and result.stderr.count("\n") == 1
    assert query("SELECT * FROM runs") == []


def test_resume_refusals(vendor, tmp_path):
    path = prompts(tmp_path, ["one"])
    nothing = batch(str(path), "--resume")
    assert nothing.exit_code == 2 and "Nothing to resume" in nothing.stderr
    assert batch(str(path)).exit_code == 0
    run_id = latest_run()["id"]
    assert batch(str(path), "--resume").exit_code == 2  # complete: nothing left to do
    complete = batch(str(path), "--resume", run_id)
    assert complete.exit_code == 0 and "is complete" in complete.stderr
    other = prompts(tmp_path, ["two"], "other.jsonl")
    mismatch = batch(str(other), "--resume", run_id)
    assert mismatch.exit_code == 2 and "started on other input" in mismatch.stderr
    unknown = batch(str(path), "--resume", "01NOSUCHRUN")
    assert unknown.exit_code == 2 and "No run '01NOSUCHRUN'" in unknown.stderr


def test_runs_lists_and_shows(vendor, tmp_path):
    path = write_prompts(tmp_path / "in.jsonl", [{"id": "a", "prompt": "hi"}, "broken"])
    assert batch(str(path), "-o", str(tmp_path / "o.jsonl")).exit_code == 1
    listed = runner.invoke(app, ["runs", "--json"])
    assert listed.exit_code == 0, listed.output
    [run] = json.loads(listed.stdout)
    assert (run["lines"], run["ok"], run["invalid"], run["attempts"]) == (2, 1, 1, 1)
    assert float(run["cost_usd"]) > 0 and run["status"] == "finished"
    table = runner.invoke(app, ["runs"])
    assert run["id"] in table.stdout and "in.jsonl" in table.stdout
    shown = runner.invoke(app, ["runs", "show", run["id"][:12]])
    assert shown.exit_code == 0 and "line 2 (" in shown.stdout and "not valid JSON" in shown.stdout
    assert f"--resume {run['id']}" in shown.stdout
    missing = runner.invoke(app, ["runs", "show", "nope"])
    assert missing.exit_code == 2
