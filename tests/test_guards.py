"""Guard rails end to end against the fake vendor: fallbacks, circuit breakers, the cache, budgets."""

import json
import time

import pytest
from typer.testing import CliRunner

import fakevendor
from conftest import ledger_rows
from routecli.cli import app

runner = CliRunner()


def run(*args, input=None):
    return runner.invoke(app, list(args), input=input)


def add_config(home, text):
    path = home / "config.toml"
    path.write_text(path.read_text() + "\n" + text)


def sent(root, model):
    return sum(1 for r in fakevendor.requests_log(root) if (r["body"] or {}).get("model") == model)


# ---------------------------------------------------------------- fallbacks


def test_a_failing_model_falls_back_to_the_next_in_its_tier_and_both_rows_are_linked(vendor):
    result = run("ask", "--tier", "cheap", "hello [[status=503 only=gpt-5.4-nano]]")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "echo: hello"
    first, second = ledger_rows()
    assert (first.status, first.error_kind, first.model, first.step) == ("error", "server", "gpt-5.4-nano", "first")
    assert (second.status, second.model, second.step) == ("ok", "gemini-3.1-flash-lite", "fallback")
    assert second.parent_id == first.id and second.request_id == first.request_id == first.id
    assert "fell back to gemini:gemini-3.1-flash-lite" in result.stderr


def test_errors_that_are_not_in_fallbacks_on_do_not_fall_back(vendor):
    result = run("ask", "--tier", "cheap", "bad [[status=400 only=gpt-5.4-nano]]")
    assert result.exit_code == 1
    [row] = ledger_rows()
    assert (row.status, row.error_kind) == ("error", "bad_request")


def test_fallbacks_can_be_switched_off(vendor, isolated_home):
    add_config(isolated_home, "[fallbacks]\nenabled = false\n")
    result = run("ask", "--tier", "cheap", "hello [[status=503 only=gpt-5.4-nano]]")
    assert result.exit_code == 1 and len(ledger_rows()) == 1


def test_a_forced_model_never_falls_back(vendor):
    result = run("ask", "--model", "openai:gpt-5.4-nano", "hello [[status=503]]")
    assert result.exit_code == 1 and len(ledger_rows()) == 1


def test_when_every_model_fails_the_last_error_is_reported_and_every_attempt_recorded(vendor):
    result = run("ask", "--tier", "cheap", "down [[status=502]]")
    assert result.exit_code == 1
    rows = ledger_rows()
    assert [r.status for r in rows] == ["error"] * 3  # nano, flash-lite, haiku (groq has no key)
    assert len({r.request_id for r in rows}) == 1
    assert result.stderr.count("error:") == 1


# ---------------------------------------------------------------- circuit breakers


def test_breaker_opens_after_consecutive_failures_skips_the_model_then_probes_and_closes(vendor, isolated_home):
    add_config(isolated_home, "[breaker]\nfailures = 2\ncooldown = 0.5\n")
    for _ in range(2):
        assert run("ask", "--tier", "cheap", "x [[status=503 only=gpt-5.4-nano]]").exit_code == 0
    before = sent(vendor, "gpt-5.4-nano")
    result = run("ask", "--tier", "cheap", "while open")
    assert result.exit_code == 0
    assert sent(vendor, "gpt-5.4-nano") == before  # skipped, not called
    skipped = [r for r in ledger_rows() if r.status == "skipped"]
    assert len(skipped) == 1 and skipped[0].error_kind == "open_circuit" and "circuit open" in skipped[0].error_message
    health = run("health", "--json")
    assert health.exit_code == 0, health.output
    states = {m["model"]: m for m in json.loads(health.stdout)["models"]}
    assert states["openai:gpt-5.4-nano"]["breaker"] == "open"
    time.sleep(0.6)
    probe = run("ask", "--tier", "cheap", "after the cooldown")
    assert probe.exit_code == 0 and "half-open" in probe.stderr
    assert sent(vendor, "gpt-5.4-nano") == before + 1
    assert ledger_rows()[-1].model == "gpt-5.4-nano"
    health = json.loads(run("health", "--json").stdout)
    assert {m["model"]: m for m in health["models"]}["openai:gpt-5.4-nano"]["breaker"] == "closed"


def test_auth_errors_do_not_trip_the_breaker(vendor, isolated_home):
    add_config(isolated_home, "[breaker]\nfailures = 1\n")
    run("ask", "--model", "openai:gpt-5.4-nano", "x [[status=401]]")
    from routecli.config import db_location
    from routecli.store import breakers, open_store

    with open_store(db_location()) as store:
        assert breakers.load(store) == {}


# ---------------------------------------------------------------- cache


def test_temperature_zero_answers_come_from_the_cache_the_second_time(vendor):
    first = run("ask", "--model", "openai:gpt-5.4-nano", "--temperature", "0", "what is 2+2")
    second = run("ask", "--model", "openai:gpt-5.4-nano", "--temperature", "0", "what is 2+2")
    assert first.exit_code == second.exit_code == 0
    assert first.stdout == second.stdout == "echo: what is 2+2\n"
    assert sent(vendor, "gpt-5.4-nano") == 1
    paid, hit = ledger_rows()
    assert hit.cache_kind == "exact" and hit.cache_source_id == paid.id
    assert hit.cost_micros == 0 and hit.saved_micros == paid.cost_micros > 0
    assert hit.baseline_cost_micros == paid.baseline_cost_micros
    assert "from the cache" in second.stderr
    third = run("ask", "--model", "openai:gpt-5.4-nano", "--temperature", "0", "--no-cache", "what is 2+2")
    assert third.exit_code == 0 and sent(vendor, "gpt-5.4-nano") == 2
    figures = json.loads(run("cache", "stats", "--json").stdout)
    assert (figures["entries"], figures["hits"], figures["saved_micros"]) == (1, 1, paid.cost_micros)
    assert run("cache", "clear").exit_code == 0
    assert json.loads(run("cache", "stats", "--json").stdout)["entries"] == 0


def test_other_temperatures_and_other_models_are_not_cached(vendor):
    for _ in range(2):
        run("ask", "--model", "openai:gpt-5.4-nano", "hi")
    run("ask", "--model", "openai:gpt-5.4-mini", "--temperature", "0", "hi")
    run("ask", "--model", "openai:gpt-5.4-nano", "--temperature", "0", "hi")
    assert sent(vendor, "gpt-5.4-nano") == 3 and sent(vendor, "gpt-5.4-mini") == 1
    assert all(r.cache_kind is None for r in ledger_rows())


def test_expired_entries_are_not_used(vendor, isolated_home):
    add_config(isolated_home, "[cache]\nttl = 0.2\n")
    run("ask", "--model", "openai:gpt-5.4-nano", "--temperature", "0", "q")
    time.sleep(0.3)
    run("ask", "--model", "openai:gpt-5.4-nano", "--temperature", "0", "q")
    assert sent(vendor, "gpt-5.4-nano") == 2


# ---------------------------------------------------------------- budgets

PRICES = """
[prices."openai:gpt-5.4-nano"]
input_mtok = 1000
output_mtok = 1000
[prices."openai:gpt-5.4-mini"]
input_mtok = 1000
output_mtok = 1000
[prices."anthropic:claude-opus-5"]
input_mtok = 100000
output_mtok = 100000
"""


def test_a_call_that_could_pass_the_limit_is_refused_and_recorded(vendor, isolated_home):
    # worst case of "hello" with --max-tokens 10 at $1000/M: (5 bytes + 32) + 10 tokens = $0.047
    add_config(isolated_home, PRICES + "[budgets]\ndaily = 0.04\non_exceed = \"refuse\"\n")
    result = run("ask", "--model", "openai:gpt-5.4-nano", "--max-tokens", "10", "hello")
    assert result.exit_code == 3
    assert result.stderr.startswith("error: Budget: daily limit $0.04") and "budgets.daily" in result.stderr
    [row] = ledger_rows()
    assert (row.status, row.error_kind) == ("skipped", "budget")
    assert sent(vendor, "gpt-5.4-nano") == 0


def test_spend_accumulates_across_runs_and_warns_near_the_limit(vendor, isolated_home):
    add_config(isolated_home, PRICES + "[budgets]\ndaily = 0.2\nwarn_share = 0.25\n")
    first = run("ask", "--model", "openai:gpt-5.4-nano", "--max-tokens", "10", "hello")
    assert first.exit_code == 0
    spent = ledger_rows()[0].cost_micros
    assert spent > 0
    shown = run("budget", "--json")
    assert shown.exit_code == 0, shown.output
    [daily] = [b for b in json.loads(shown.stdout)["limits"] if b["period"] == "daily"]
    assert daily["spent_micros"] == spent and daily["reserved_micros"] == 0 and daily["limit_micros"] == 200_000
    for _ in range(3):
        result = run("ask", "--model", "openai:gpt-5.4-nano", "--max-tokens", "10", "hello")
    # each call: $0.003 spent, $0.047 held at worst; the warning comes at $0.05 of $0.20
    assert "budget: daily limit $0.2" in result.stderr
    alerts = run("budget", "--json")
    assert json.loads(alerts.stdout)["alerts"], alerts.stdout


def test_downgrade_picks_a_cheaper_tier_that_fits(vendor, isolated_home):
    expensive = "".join(f'[prices."{ref}"]\ninput_mtok = 100000\noutput_mtok = 100000\n'
                        for ref in ("openai:gpt-5.5", "gemini:gemini-3.1-pro-preview"))
    add_config(isolated_home, PRICES + expensive + "[budgets]\ndaily = 0.5\n"
               "[routing.thresholds]\nstandard = 0.001\npremium = 0.002\n")
    result = run("ask", "--max-tokens", "10", "explain tides in detail")
    assert result.exit_code == 0, result.output
    [row] = ledger_rows()
    assert row.tier != "premium"
    assert any("downgraded from anthropic:claude-opus-5" in note for note in row.notes)


def test_free_models_are_never_blocked(vendor, isolated_home):
    add_config(isolated_home, '[prices."openai:*"]\ninput_mtok = 0\noutput_mtok = 0\n'
               "[budgets]\ndaily = 0.0\non_exceed = \"refuse\"\n")
    result = run("ask", "--model", "openai:gpt-5.4-nano", "hello")
    assert result.exit_code == 0, result.output


def test_bad_budget_values_are_one_line_config_errors(isolated_home):
    (isolated_home / "config.toml").write_text("[budgets]\ndaily = -1\n")
    result = run("ask", "--dry-run", "hi")
    assert result.exit_code == 2 and "budgets.daily" in result.stderr and "dollars" in result.stderr
    result = run("config", "set", "budgets.on_exceed", "explode")
    assert result.exit_code == 2 and "downgrade, refuse" in result.stderr


@pytest.mark.timeout(120)
def test_concurrent_batch_never_passes_the_run_budget(vendor, isolated_home, tmp_path):
    add_config(isolated_home, PRICES)
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"id": str(i), "prompt": f"hello {i} [[delay=0.05]]",
                                        "model": "openai:gpt-5.4-nano", "max_tokens": 10}) + "\n"
                            for i in range(200)))
    result = run("batch", str(path), "-o", str(tmp_path / "out.jsonl"), "-c", "64", "--budget", "1.00")
    assert result.exit_code == 1  # some lines refused
    rows = ledger_rows()
    spent = sum(r.cost_micros or 0 for r in rows)
    assert 0 < spent <= 1_000_000
    refused = [r for r in rows if r.error_kind == "budget"]
    answered = [r for r in rows if r.status == "ok"]
    assert refused and answered and len(refused) + len(answered) == 200
    assert budget_state() == (0, 0)  # every hold freed with its row


def budget_state():
    """(holds left, micros still reserved on any counter) in the test's ledger."""
    from routecli.config import db_location
    from routecli.store import open_store

    with open_store(db_location()).read() as conn:
        holds = conn.exec_driver_sql("SELECT COUNT(*) FROM budget_holds").scalar_one()
        reserved = conn.exec_driver_sql("SELECT COALESCE(SUM(reserved_micros), 0) FROM budget_spend").scalar_one()
    return holds, reserved


def test_a_batch_under_a_budget_frees_every_hold_through_retries_fallbacks_escalations_and_the_cache(
        vendor, isolated_home, tmp_path):
    add_config(isolated_home, PRICES + "[budgets]\ndaily = 100.0\n")
    items = [
        {"id": "fb", "prompt": "hello [[status=503 only=gpt-5.4-nano]]", "tier": "cheap"},
        {"id": "esc", "prompt": f"Explain how TCP congestion control works {WEAK}"},
        {"id": "c1", "prompt": "same question", "model": "openai:gpt-5.4-mini", "temperature": 0},
        {"id": "c2", "prompt": "same question", "model": "openai:gpt-5.4-mini", "temperature": 0},
    ]
    result = run("batch", str(write_lines(tmp_path, items)), "-o", str(tmp_path / "out.jsonl"), "-c", "1",
                 "--max-retries", "1", "--backoff", "0.01")
    assert result.exit_code == 0, result.output
    steps = [(r.step, r.status) for r in ledger_rows()]
    assert ("retry", "error") in steps and ("fallback", "ok") in steps and ("escalation", "ok") in steps
    assert any(r.cache_kind == "exact" for r in ledger_rows())
    assert budget_state() == (0, 0)


# ---------------------------------------------------------------- escalation

WEAK = "[[reply_b64=" + __import__("base64").b64encode(b"I am not sure, I cannot help with that.").decode() + "]]"


def test_a_weak_cheap_answer_is_escalated_once_and_both_rows_are_linked(vendor):
    result = run("ask", "--json", f"Explain how TCP congestion control works {WEAK}")
    assert result.exit_code == 0, result.output
    first, second = ledger_rows()
    assert first.status == second.status == "ok"
    assert first.confidence < 0.7 and second.step == "escalation" and second.parent_id == first.id
    assert any(note.startswith("assessed") and "refusal" in note for note in first.notes)
    assert second.request_id == first.id
    from routecli.config import load_config

    order = load_config().tier_order
    assert order.index(second.tier) == order.index(first.tier) + 1
    shown = json.loads(result.stdout)
    assert shown["tier"] == second.tier and any("escalated" in h for h in shown["history"])


def test_escalation_can_be_switched_off_and_a_confident_answer_stays(vendor, isolated_home):
    run("ask", "Explain how TCP congestion control works")
    assert len(ledger_rows()) == 1 and ledger_rows()[0].confidence >= 0.7
    add_config(isolated_home, "[escalation]\nenabled = false\n")
    run("ask", f"Explain how TCP congestion control works {WEAK}")
    assert len(ledger_rows()) == 2


def test_a_failed_escalation_keeps_the_first_answer(vendor):
    from routecli.config import load_config

    standard = [ref.model for ref in load_config().tiers["standard"]]
    fail_up = f"[[status=503 only={','.join(standard)}]]"
    result = run("ask", f"Explain how TCP congestion control works {WEAK} {fail_up}")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "I am not sure, I cannot help with that."
    rows = ledger_rows()
    assert [r.step for r in rows] == ["first", "escalation"] and rows[1].status == "error"
    assert "kept the first answer" in result.stderr


# ---------------------------------------------------------------- batch


def write_lines(tmp_path, items):
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return path


def test_batch_lines_fall_back_escalate_and_hit_the_cache_and_nothing_is_charged_twice(vendor, tmp_path):
    items = [
        {"id": "fb", "prompt": "hello [[status=503 only=gpt-5.4-nano]]", "tier": "cheap"},
        {"id": "esc", "prompt": f"Explain how TCP congestion control works {WEAK}"},
        {"id": "c1", "prompt": "same question", "model": "openai:gpt-5.4-mini", "temperature": 0},
    ]
    out = tmp_path / "out.jsonl"
    result = run("batch", str(write_lines(tmp_path, items)), "-o", str(out), "-c", "1", "--max-retries", "0")
    assert result.exit_code == 0, result.output
    again = run("batch", str(write_lines(tmp_path, [items[2]])), "-o", str(tmp_path / "o2.jsonl"))
    assert again.exit_code == 0, again.output
    results = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert {r["status"] for r in results.values()} == {"ok"}
    rows = ledger_rows()
    fb = [r for r in rows if "hello" in (r.prompt or "")]
    assert [r.step for r in fb] == ["first", "fallback"] and fb[1].parent_id == fb[0].id
    esc = [r for r in rows if "TCP" in (r.prompt or "")]
    assert [r.step for r in esc] == ["first", "escalation"]
    assert results["esc"]["tier"] == esc[1].tier
    cached = [r for r in rows if r.prompt == "same question"]
    assert [r.cache_kind for r in cached] == [None, "exact"] and cached[1].cost_micros == 0
    assert sent(vendor, "gpt-5.4-mini") >= 1
    paid = [r for r in rows if r.cost_micros]
    assert len({r.id for r in paid}) == len(paid)  # each paid call is one row


def test_batch_open_breaker_routes_lines_around_a_failing_model(vendor, isolated_home, tmp_path):
    add_config(isolated_home, "[breaker]\nfailures = 2\ncooldown = 60\n")
    items = [{"id": str(i), "prompt": f"line {i} [[status=503 only=gpt-5.4-nano]]", "tier": "cheap"}
             for i in range(8)]
    result = run("batch", str(write_lines(tmp_path, items)), "-o", str(tmp_path / "out.jsonl"), "-c", "1",
                 "--max-retries", "0")
    assert result.exit_code == 0, result.output
    rows = ledger_rows()
    assert sum(1 for r in rows if r.model == "gpt-5.4-nano" and r.status == "error") == 2
    assert sum(1 for r in rows if r.error_kind == "open_circuit") == 6
    assert sum(1 for r in rows if r.status == "ok") == 8


def test_stalls_malformed_bodies_and_429s_end_answered_by_a_fallback_and_nothing_is_charged_twice(
        vendor, isolated_home, tmp_path):
    add_config(isolated_home, "[http]\nread_timeout = 0.3\n")
    items = [{"id": "stall", "prompt": "stall [[delay=1 only=gpt-5.4-nano]]", "tier": "cheap"},
             {"id": "broken", "prompt": "broken [[malformed only=gpt-5.4-nano]]", "tier": "cheap"},
             {"id": "limited", "prompt": "limited [[status=429 retry_after=0.1 only=gpt-5.4-nano]]", "tier": "cheap"}]
    out = tmp_path / "out.jsonl"
    result = run("batch", str(write_lines(tmp_path, items)), "-o", str(out), "--max-retries", "1",
                 "--backoff", "0.05")
    assert result.exit_code == 0, result.output
    results = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert all(r["status"] == "ok" and r["model"] == "gemini-3.1-flash-lite" for r in results.values()), results
    rows = ledger_rows()
    failed = [r for r in rows if r.status == "error"]
    assert sorted(r.error_kind for r in failed) == ["malformed", "rate_limit", "rate_limit", "timeout", "timeout"]
    assert all(r.cost_micros is None for r in failed)
    answered = [r for r in rows if r.status == "ok"]
    assert len(answered) == 3 and all(r.step == "fallback" for r in answered)
    assert sum(r["cost_usd"] is not None for r in results.values()) == 3


def test_the_similarity_cache_is_opt_in_records_its_evidence_and_never_mixes_numbers(vendor, isolated_home):
    ask = ("ask", "--model", "openai:gpt-5.4-nano", "--temperature", "0")
    run(*ask, "What is the capital of France?")
    run(*ask, "what is the capital of france")
    assert sent(vendor, "gpt-5.4-nano") == 2  # off by default
    add_config(isolated_home, "[cache]\nsimilar = true\n")
    run(*ask, "Explain how a hash map handles collisions, briefly.")
    hit = run(*ask, "explain how a hash map handles collisions briefly")
    assert hit.exit_code == 0 and hit.stdout == "echo: Explain how a hash map handles collisions, briefly.\n"
    assert sent(vendor, "gpt-5.4-nano") == 3
    row = ledger_rows()[-1]
    assert row.cache_kind == "similar" and row.similarity >= 0.95 and row.cache_source_id == ledger_rows()[-2].id
    run(*ask, "What is 12 times 13?")
    run(*ask, "What is 12 times 14?")  # one digit apart: a different question
    run(*ask, "Explain how a hash map handles deletions, briefly.")
    assert sent(vendor, "gpt-5.4-nano") == 6
    run("ask", "--model", "openai:gpt-5.4-mini", "--temperature", "0", "explain how a hash map handles collisions")
    assert sent(vendor, "gpt-5.4-mini") == 1  # another model's answer is never reused


def test_the_last_resort_tier_answers_when_every_model_failed_even_past_max_attempts(vendor, isolated_home):
    add_config(isolated_home, "[routing.thresholds]\nstandard = 0.98\npremium = 0.99\n"
               '[fallbacks]\nclimb = false\nmax_attempts = 2\nlast_resort = "premium"\n')
    down = "gpt-5.4-nano,gemini-3.1-flash-lite,claude-haiku-4-5"
    result = run("ask", f"hello [[status=503 only={down}]]")
    assert result.exit_code == 0, result.output
    rows = ledger_rows()
    assert [r.status for r in rows] == ["error", "error", "ok"]
    assert rows[-1].tier == "premium" and rows[-1].step == "fallback"


def test_the_default_last_resort_is_the_local_tier_and_it_is_free():
    from routecli.config import load_config
    from routecli.domain import ModelRef, Usage
    from routecli.pricing import price

    config = load_config()
    assert config.guards.fallbacks.last_resort == "local"
    [ref] = config.tiers["local"]
    assert price(Usage(1000, 1000), ref, config).cost == 0
    assert price(Usage(1000, 1000), ModelRef("openai", "gpt-5.4-nano"), config).cost > 0


def test_a_context_window_failure_falls_back_only_to_models_with_larger_windows():
    from routecli.config import load_config
    from routecli.domain import Decision, Message, ModelRef, Request, Verdict
    from routecli.flow import Journey, Policy
    from routecli.keys import KeyRing

    config = load_config()
    windows = {"openai:small": 8_000, "openai:same": 8_000, "openai:big": 200_000, "openai:unknown": None}
    refs = [ModelRef.parse(r) for r in windows]
    policy = Policy(config, KeyRing(config), gate=None, window_of=lambda ref: windows[str(ref)])
    journey = Journey(Request((Message("user", "x"),)), "R", "ask", None, [(ref, "cheap") for ref in refs[1:]])
    journey.attempts = 1
    decision = Decision(Verdict(0.1, "cheap", (), "learned", "learned", "v"), refs[0], "cheap")
    nxt = policy.next_model(journey, decision, "R", "context_window")
    assert str(nxt.model) == "openai:big" and [str(r) for r, _ in journey.chain] == ["openai:unknown"]
    assert nxt.notes[-1] == "fallback after openai:small: context_window"
