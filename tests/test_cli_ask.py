"""`routecli ask` end to end: CLI -> engine -> a real HTTP server -> the ledger on disk."""

import base64
import json

import pytest
from typer.testing import CliRunner

import fakevendor
from conftest import VENDOR_KEY
from conftest import ledger_rows
from routecli.cli import app
from routecli.config import load_config

runner = CliRunner()


def run(*args, input=None):
    return runner.invoke(app, list(args), input=input)


rows = ledger_rows


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_ask_streams_answer_and_records_one_honest_row(vendor, provider):
    model = {"openai": "gpt-5.4-nano", "anthropic": "claude-haiku-4-5", "gemini": "gemini-3.1-flash-lite"}[provider]
    result = run("ask", "--model", f"{provider}:{model}", "--system", "be brief", "Tell me about tides")
    assert result.exit_code == 0, result.output
    assert result.stdout == "echo: Tell me about tides\n"
    assert f"{provider}:{model}" in result.stderr and "tokens" in result.stderr
    [row] = rows()
    assert (row.status, row.provider, row.model, row.phase) == ("ok", provider, model, "explicit")
    assert row.answer == "echo: Tell me about tides" and row.prompt == "Tell me about tides"
    assert row.input_tokens == 6 and row.output_tokens == 5  # the fake counts words
    assert row.cost_micros is not None and row.cost_micros > 0
    assert row.baseline_cost_micros > row.cost_micros
    assert row.price_source.startswith("genai-prices")
    assert row.ttft_ms is not None and row.latency_ms >= row.ttft_ms
    sent = fakevendor.requests_log(vendor)[-1]["body"]
    assert "be brief" in json.dumps(sent)


def test_routed_ask_uses_the_classifier_and_says_why(vendor):
    result = run("ask", "--json", "What is the capital of France?")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["tier"] == "cheap" and out["phase"] == load_config().classifier
    assert out["model"] == "gpt-5.4-nano" and out["answer"] == "echo: What is the capital of France?"
    assert any("simple task" in reason for reason in out["reasons"])
    assert float(out["cost_usd"]) > 0 and float(out["baseline_cost_usd"]) > float(out["cost_usd"])
    [row] = rows()
    assert row.id == out["id"] and row.tier == "cheap" and round(row.score, 4) == out["score"]


def test_no_stream_and_stdin(vendor):
    result = run("ask", "--no-stream", "--tier", "premium", "-", input="Explain tides please\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("echo: Explain tides please")
    [row] = rows()
    assert row.tier == "premium" and row.ttft_ms is None and row.phase == "explicit"


def test_provider_error_is_recorded_and_exits_nonzero(vendor):
    result = run("ask", "--model", "openai:gpt-5.4-nano", "boom [[status=503]]")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "503" in result.stderr
    [row] = rows()
    assert (row.status, row.error_kind) == ("error", "server")
    assert row.cost_micros is None and row.input_tokens is None


def test_wrong_key_never_reaches_ledger_or_messages(vendor, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-secret-123456")
    result = run("ask", "--model", "openai:gpt-5.4-nano", "hello")
    assert result.exit_code == 1
    assert "OPENAI_API_KEY" in result.stderr and "sk-wrong-secret-123456" not in result.output
    [row] = rows()
    assert row.error_kind == "auth"
    exported = run("export", "--jsonl")
    assert "sk-wrong-secret" not in exported.stdout and VENDOR_KEY not in exported.stdout


def test_unknown_price_is_null_with_a_warning(vendor, isolated_home):
    with open(isolated_home / "config.toml", "a") as fh:
        fh.write('[tiers.cheap]\nmodels = ["openai:my-finetune-7"]\n')
    result = run("ask", "hello there")
    assert result.exit_code == 0, result.output
    assert "No price known for openai:my-finetune-7" in result.stderr
    [row] = rows()
    assert row.cost_micros is None and row.price_source == "unknown"


def test_save_text_off_keeps_hashes_only(vendor, isolated_home):
    with open(isolated_home / "config.toml", "a") as fh:
        fh.write("[store]\nsave_text = false\n")
    assert run("ask", "secret plans").exit_code == 0
    [row] = rows()
    assert row.prompt is None and row.answer is None and len(row.prompt_hash) == 64


def test_dry_run_decides_records_and_calls_nothing(vendor):
    result = run("ask", "--dry-run", "--json", "Prove the algorithm is correct, step by step")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["status"] == "dry-run" and out["tier"] == "premium" and out["answer"] is None
    assert fakevendor.requests_log(vendor) == []
    [row] = rows()
    assert row.status == "dry-run" and row.cost_micros is None


def test_dry_run_without_any_key_still_shows_the_route():
    result = run("ask", "--dry-run", "hi")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("cheap\topenai:gpt-5.4-nano")
    assert "dry run: No API key" in result.stderr
    assert rows()[0].status == "dry-run"


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["ask", "   "], "Empty prompt"),
        (["ask", "--tier", "gold", "hi"], "Unknown tier 'gold'"),
        (["ask", "--model", "nowhere:x", "hi"], "Unknown provider 'nowhere'"),
        (["ask", "--model", "justamodel", "hi"], "provider:model"),
        (["ask", "--image", "/no/such.png", "hi"], "Cannot read image"),
        (["ask", "--api-key", "sk-123456", "hi"], "--api-key needs --model"),
        (["ask", "--temperature", "7", "hi"], "between 0 and 2"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(args, fragment):
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr and result.stderr.count("\n") == 1
    assert result.stdout == ""
    assert rows() == []


def test_huge_prompt_is_refused_before_anything_is_written():
    result = run("ask", "-", input="x" * 2_000_000)
    assert result.exit_code == 2 and "over the limit" in result.stderr
    assert rows() == []


def test_invalid_utf8_on_stdin_is_refused():
    result = runner.invoke(app, ["ask", "-"], input=b"\xff\xfe bad")
    assert result.exit_code == 2 and "not UTF-8" in result.stderr


def test_broken_config_is_one_line_exit_2(isolated_home):
    (isolated_home / "config.toml").write_text("[routing\n")
    result = run("ask", "hi")
    assert result.exit_code == 2 and "not valid TOML" in result.stderr


def test_image_goes_to_a_vision_model_in_its_wire_format(vendor, tmp_path):
    from pathlib import Path

    png = Path(__file__).resolve().parent.parent / "sample_prompts" / "images" / "chart.png"
    result = run("ask", "--model", "anthropic:claude-haiku-4-5", "--image", str(png), "What colour is the square?")
    assert result.exit_code == 0, result.output
    body = fakevendor.requests_log(vendor)[-1]["body"]
    [image] = [block for block in body["messages"][0]["content"] if block["type"] == "image"]
    assert image["source"]["media_type"] == "image/png"
    assert base64.b64decode(image["source"]["data"]) == png.read_bytes()
    not_png = tmp_path / "x.png"
    not_png.write_text("hello")
    bad = run("ask", "--image", str(not_png), "hi")
    assert bad.exit_code == 2 and "not a PNG, JPEG, GIF or WebP" in bad.stderr
