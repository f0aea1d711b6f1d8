"""The local tier: model files from pip, the in-process llamacpp provider, and `ask` with no key.

The tests marked `needs_model` run the real model of `pip install "routecli[local]"`; they skip
only where that extra is not installed, and CI (ROUTECLI_REQUIRE_LOCAL=1) never skips them.
The model is loaded once per process (the provider's own cache), so they share one load.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
import sys
import threading
from decimal import Decimal
from importlib import metadata

import pytest
from batchkit import write_prompts
from conftest import ledger_rows
from typer.testing import CliRunner

from routecli.cli import app
from routecli.config import ProviderConfig, load_config
from routecli.domain import Message, ModelRef, Request, Usage
from routecli.errors import ConfigError, ProviderError
from routecli.keys import KeyRing
from routecli.keys import local_runtime_installed as real_local_runtime_installed
from routecli.providers import get_provider, llamacpp, make_client
from routecli.providers.aio import get_async_provider, make_async_client
from routecli.routing import classify
from routecli.routing.choose import choose

MODEL = llamacpp.DEFAULT_MODEL
REF = ModelRef("local", MODEL)


def _extra_installed() -> bool:
    try:
        metadata.distribution(llamacpp.PACKAGED[MODEL].parts[0][0])
    except metadata.PackageNotFoundError:
        return False
    return importlib.util.find_spec("llama_cpp") is not None


needs_model = pytest.mark.skipif(
    not _extra_installed() and not os.environ.get("ROUTECLI_REQUIRE_LOCAL"),
    reason='the local model is not installed: pip install -e ".[local]"',
)
runner = CliRunner()


def run(*args):
    return runner.invoke(app, list(args))


@pytest.fixture
def local_model(monkeypatch):
    """Undo conftest's "no local model": this test runs the real one."""
    monkeypatch.setattr("routecli.keys.local_runtime_installed", real_local_runtime_installed)


def provider(**settings) -> llamacpp.LlamaCppProvider:
    cfg = ProviderConfig("local", "llamacpp", "", None, **settings)
    return get_provider(cfg, api_key=None, client=make_client(cfg), default_max_tokens=64)


def ask(text: str, **fields) -> Request:
    return Request(messages=(Message("user", text),), **fields)


# ---------------------------------------------------------------- config and routing, no model needed


def test_defaults_put_the_free_local_model_first_and_make_it_the_judge():
    config = load_config()
    assert config.tier_order[0] == "local" and config.tiers["local"] == (REF,)
    assert config.provider("local").kind == "llamacpp" and config.provider("local").api_key_env is None
    assert config.judge.model == REF and config.judge.enabled is False
    from routecli.pricing import price

    cost = price(Usage(input_tokens=1000, output_tokens=1000), REF, config)
    assert cost.cost == Decimal(0) and cost.source == "config"


def test_a_llamacpp_provider_needs_no_base_url_and_checks_its_settings(isolated_home):
    config_file = isolated_home / "config.toml"
    config_file.write_text('[providers.mine]\nkind = "llamacpp"\nthreads = 2\ncontext_size = 2048\n'
                           '[tiers.mine]\nmodels = ["mine:/models/x.gguf"]\n')
    mine = load_config().provider("mine")
    assert (mine.kind, mine.base_url, mine.threads, mine.context_size, mine.api_key_env) == (
        "llamacpp", "", 2, 2048, None)
    config_file.write_text('[providers.mine]\nkind = "llamacpp"\nthreads = 0\n')
    with pytest.raises(ConfigError, match="providers.mine.threads"):
        load_config()


def test_with_the_extra_easy_prompts_go_local_even_with_keys(monkeypatch):
    monkeypatch.setattr("routecli.keys.local_runtime_installed", lambda: True)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    config = load_config()
    keys = KeyRing(config)
    easy = ask("What is the capital of France?")
    decision = choose(classify(easy, config), easy, config, keys.has)
    assert (decision.tier, decision.model, decision.notes) == ("local", REF, ())
    hard = ask("Prove that there are infinitely many primes of the form 4k+3. Derive it step by step.")
    assert choose(classify(hard, config), hard, config, keys.has).model.provider == "openai"


def test_without_the_extra_the_local_tier_is_skipped_quietly(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")  # conftest: no local model here
    config = load_config()
    easy = ask("What is the capital of France?")
    verdict = classify(easy, config)
    decision = choose(verdict, easy, config, KeyRing(config).has)
    assert verdict.tier == "local" and decision.tier == "cheap" and decision.model.provider == "openai"
    assert decision.notes == ()


def test_without_keys_or_the_extra_the_errors_name_the_extra():
    result = run("ask", "What is the capital of France?")
    assert result.exit_code != 0
    assert "OPENAI_API_KEY" in result.output and 'pip install "routecli[local]"' in result.output
    forced = run("ask", "--model", str(REF), "hi")
    assert forced.exit_code != 0 and 'pip install "routecli[local]"' in forced.output
    only_local = run("ask", "--tier", "local", "hi")
    assert "The local model is not installed" in only_local.output


def test_a_missing_llama_cpp_is_a_provider_error_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # what `import` sees when it is not installed
    with pytest.raises(ProviderError, match=r'pip install "routecli\[local\]"') as info:
        llamacpp._llama_module()
    assert info.value.kind == "not_found"


# ---------------------------------------------------------------- model files


def _packaged(tmp_path, monkeypatch, parts, data: bytes, sha: str | None = None) -> llamacpp.PackagedModel:
    monkeypatch.setenv("ROUTECLI_MODEL_DIR", str(tmp_path / "cache"))
    spec = llamacpp.PackagedModel("pip install tiny", parts, len(data), sha or hashlib.sha256(data).hexdigest(),
                                  "tiny.gguf")
    monkeypatch.setitem(llamacpp.PACKAGED, "tiny", spec)
    return spec


def test_a_packaged_model_is_joined_once_from_installed_files(tmp_path, monkeypatch):
    # two real installed files stand in for the chunks: found through package metadata, never imported
    parts = (("pytest", "pytest/__init__.py"), ("pytest", "pytest/__main__.py"))
    data = b"".join(metadata.distribution(d).locate_file(f).read_bytes() for d, f in parts)
    _packaged(tmp_path, monkeypatch, parts, data)
    path = llamacpp.model_file("tiny")
    assert path.read_bytes() == data and path.parent == tmp_path / "cache"
    monkeypatch.setattr(llamacpp, "_join", lambda *a: pytest.fail("joined twice"))
    assert llamacpp.model_file("tiny") == path
    assert [p.name for p in path.parent.iterdir()] == ["tiny.gguf"]  # no scratch files left


def test_files_that_do_not_match_the_pinned_hash_are_refused(tmp_path, monkeypatch):
    parts = (("pytest", "pytest/__init__.py"),)
    data = metadata.distribution("pytest").locate_file("pytest/__init__.py").read_bytes()
    _packaged(tmp_path, monkeypatch, parts, data, sha="0" * 64)
    with pytest.raises(ProviderError, match="do not match their pinned SHA-256") as info:
        llamacpp.model_file("tiny")
    assert info.value.kind == "malformed" and list((tmp_path / "cache").iterdir()) == []


def test_missing_model_files_unknown_names_and_paths_say_what_to_do(tmp_path, monkeypatch):
    _packaged(tmp_path, monkeypatch, (("routecli-no-such-package", "x.bin"),), b"x")
    with pytest.raises(ProviderError, match="routecli-no-such-package is missing.*pip install tiny"):
        llamacpp.model_file("tiny")
    with pytest.raises(ProviderError, match="unknown local model 'nope'.*qwen2.5-coder-0.5b-instruct"):
        llamacpp.model_file("nope")
    with pytest.raises(ProviderError, match="no GGUF file at"):
        llamacpp.model_file(str(tmp_path / "absent.gguf"))


# ---------------------------------------------------------------- the real model


@needs_model
def test_ask_with_no_key_answers_three_questions_locally_with_real_token_counts(local_model):
    questions = {"What is the capital of France?": "paris", "What is 2 + 2?": "4",
                 "Who wrote 'Pride and Prejudice'?": "austen"}
    for question, expected in questions.items():
        result = run("ask", "--max-tokens", "40", question)
        assert result.exit_code == 0, result.output
        assert expected in result.stdout.lower()
        assert f"local · {REF} ·" in result.stderr and "$0.000000" in result.stderr  # the footer says so
    rows = ledger_rows()
    assert [r.prompt for r in rows] == list(questions)
    loaded = llamacpp.load(MODEL, context_size=4096, threads=None)
    for row in rows:
        assert (row.status, row.tier, row.provider, row.model) == ("ok", "local", "local", MODEL)
        assert row.cost_micros == 0 and row.baseline_cost_micros > 0 and row.price_source == "config"
        # the prompt as the model's own chat template renders it, and the answer as its tokenizer reads it
        assert row.input_tokens == len(llamacpp.prompt_tokens(loaded, ask(row.prompt)))
        assert row.output_tokens == len(loaded.llama.tokenize(row.answer.encode(), add_bos=False))
        assert 0 < row.output_tokens <= 40 and row.ttft_ms is not None


@needs_model
def test_batch_answers_locally_through_the_async_provider(local_model, tmp_path):
    items = [{"id": "it", "prompt": "What is the capital of Italy?", "max_tokens": 16},
             {"id": "es", "prompt": "What is the capital of Spain?", "max_tokens": 16}]
    out = tmp_path / "out.jsonl"
    result = run("batch", str(write_prompts(tmp_path / "in.jsonl", items)), "-o", str(out), "-c", "2")
    assert result.exit_code == 0, result.output
    answers = {line["id"]: line for line in map(json.loads, out.read_text().splitlines())}
    assert "rome" in answers["it"]["answer"].lower() and "madrid" in answers["es"]["answer"].lower()
    assert {a["status"] for a in answers.values()} == {"ok"} and {a["tier"] for a in answers.values()} == {"local"}


@needs_model
def test_streaming_sends_every_piece_and_the_reply_is_their_sum():
    pieces: list[str] = []
    reply = provider().complete(ask("Name one primary colour.", max_tokens=12), MODEL, on_text=pieces.append)
    assert "".join(pieces) == reply.text and len(pieces) > 1
    assert reply.usage.output_tokens <= 12 and reply.finish_reason in ("stop", "length")
    assert 0 < reply.ttft_ms <= reply.latency_ms


@needs_model
def test_async_callers_take_turns_and_get_their_pieces_on_the_event_loop():
    async def two_at_once():
        cfg = ProviderConfig("local", "llamacpp", "", None)
        local = get_async_provider(cfg, api_key=None, client=make_async_client(cfg, 4))
        seen: list[tuple[int, str]] = []
        replies = await asyncio.gather(*(
            local.complete(ask(q, max_tokens=12), MODEL, stream=True,
                           on_text=lambda piece: seen.append((threading.get_ident(), piece)))
            for q in ("What is the capital of Peru?", "What is the capital of Chile?")))
        await local.client.aclose()
        return replies, seen

    replies, seen = asyncio.run(two_at_once())
    assert {thread for thread, _ in seen} == {threading.get_ident()}  # asyncio.run's loop runs here
    assert "".join(piece for _, piece in seen) == replies[0].text + replies[1].text  # one after the other
    assert "lima" in replies[0].text.lower() and "santiago" in replies[1].text.lower()


@needs_model
def test_a_prompt_longer_than_the_context_is_refused_before_generating():
    with pytest.raises(ProviderError, match="over the local model's context of 4,096") as info:
        provider().complete(ask("word " * 5000), MODEL)
    assert info.value.kind == "context_window" and info.value.provider == "local"


@needs_model
def test_silence_past_read_timeout_is_a_timeout():
    with pytest.raises(ProviderError, match="no token within") as info:
        provider(read_timeout=1e-6).complete(ask("hi"), MODEL)
    assert info.value.kind == "timeout"
