"""Phase 2 end to end: the judge is a real call to the local server; failures keep phase 1."""

import base64
import json

import pytest
from typer.testing import CliRunner

import fakevendor
from conftest import ledger_rows
from routecli.cli import app

runner = CliRunner()


def reply(text):
    return f"[[reply_b64={base64.b64encode(text.encode()).decode()}]]"


@pytest.fixture
def judged(vendor, isolated_home):
    with open(isolated_home / "config.toml", "a") as fh:
        fh.write('[judge]\nenabled = true\nmodel = "openai:gpt-5.4-nano"\nband = [0.0, 1.0]\ntimeout = 0.5\n')
    return vendor


rows = ledger_rows


def ask(text):
    result = runner.invoke(app, ["ask", "--json", text])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


def test_judge_decides_is_recorded_and_cached(judged):
    prompt = "What is the capital of France? " + reply('{"tier": "premium", "reason": "the judge says so"}')
    out, _ = ask(prompt)
    assert out["phase"] == "judge" and out["tier"] == "premium"
    assert any(r.startswith("judge: premium, the judge says so") for r in out["reasons"])
    by_source = {r.source: r for r in rows()}
    judge_row, main_row = by_source["judge"], by_source["ask"]
    assert judge_row.request_id == main_row.id and judge_row.tier == "judge" and judge_row.status == "ok"
    assert judge_row.cost_micros is not None and main_row.phase == "judge"
    sent = len(fakevendor.requests_log(judged))
    again, _ = ask(prompt)
    assert again["phase"] == "judge" and any("judge (cached)" in r for r in again["reasons"])
    assert len(fakevendor.requests_log(judged)) == sent + 1  # only the answer, no second judge call


@pytest.mark.parametrize(
    "directive, kind",
    [(reply("I think premium"), "unusable answer"), ("[[delay=1.2]]", "timeout"), (reply('{"tier": "gold"}'), "unusable answer")],
)
def test_judge_failure_keeps_phase_one_and_says_why(judged, directive, kind):
    out, stderr = ask("What is the capital of France? " + directive)
    assert out["phase"] == "learned" and out["status"] == "ok"
    assert f"judge fallback ({kind})" in stderr and "phase-1 decision stands" in stderr
    judge_row = next(r for r in rows() if r.source == "judge")
    assert judge_row.status == ("error" if kind == "timeout" else "ok")


def test_explicit_choices_and_dry_runs_skip_the_judge(judged):
    assert runner.invoke(app, ["ask", "--tier", "cheap", "hi"]).exit_code == 0
    assert runner.invoke(app, ["ask", "--dry-run", "hi"]).exit_code == 0
    assert {r.source for r in rows()} == {"ask"} and fakevendor.requests_log(judged)[0]["path"].endswith("/chat/completions")
    assert len(fakevendor.requests_log(judged)) == 1


def test_batch_lines_are_judged_too(judged, tmp_path):
    from batchkit import write_prompts

    verdict = reply('{"tier": "premium", "reason": "hard"}')
    prompts = write_prompts(tmp_path / "p.jsonl", [{"id": str(i), "prompt": f"question {i} {verdict}"} for i in range(3)])
    result = runner.invoke(app, ["batch", str(prompts), "-o", str(tmp_path / "out.jsonl")])
    assert result.exit_code == 0, result.output
    by_source = {}
    for row in rows():
        by_source.setdefault(row.source, []).append(row)
    assert len(by_source["judge"]) == 3 and len(by_source["batch"]) == 3
    assert {r.request_id for r in by_source["judge"]} == {r.request_id for r in by_source["batch"]}
    assert all(r.phase == "judge" and r.tier == "premium" for r in by_source["batch"])
