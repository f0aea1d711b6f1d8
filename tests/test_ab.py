"""A/B tests of routing strategies: syntax, consistent assignment, the engine hook, feedback, the report."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from typer.testing import CliRunner

from routecli.analytics.ab import ABTest, assign, bucket, parse_split, parse_strategy, parse_variant
from routecli.analytics.ab_report import Tally, pick_winner
from routecli.analytics.significance import Moments, student_t_two_sided, two_proportions, welch, wilson
from routecli.cli import app
from routecli.domain import Message, Request
from routecli.errors import UsageError

runner = CliRunner()


def run(*args, input=None):
    return runner.invoke(app, list(args), input=input)


def request(text="hello", **fields) -> Request:
    return Request(messages=(Message("user", text),), **fields)


def two_way(by="prompt", split=(50, 50), status="running") -> ABTest:
    variants = (("a", parse_strategy("rules")), ("b", parse_strategy("learned@0.5")))
    return ABTest("t", variants, split, by, status)


# ---------------------------------------------------------------- strategy syntax


@pytest.mark.parametrize("text, classifier, cut, thresholds", [
    ("rules", "rules", None, ()),
    ("learned@0.5", "learned", 0.5, ()),
    ("learned:standard=0.45,premium=0.54", "learned", None, (("standard", 0.45), ("premium", 0.54))),
    (" learned : standard = 0.4 ", "learned", None, (("standard", 0.4),)),
])
def test_strategy_forms(text, classifier, cut, thresholds):
    strategy = parse_strategy(text)
    assert (strategy.classifier, strategy.cut, strategy.thresholds) == (classifier, cut, thresholds)


@pytest.mark.parametrize("text, fragment", [
    ("magic", "unknown classifier 'magic' (known: learned, rules)"),
    ("learned@high", "'high' is not a score"),
    ("learned@1.5", "outside 0..1"),
    ("learned:standard", "is not TIER=SCORE"),
    ("learned:standard=0.2,standard=0.3", "given twice"),
    ("learned:", "cannot read it"),
])
def test_bad_strategies_are_one_line_naming_the_forms(text, fragment):
    with pytest.raises(UsageError) as caught:
        parse_strategy(text)
    message = str(caught.value)
    assert fragment in message and "write CLASSIFIER, CLASSIFIER@SCORE or CLASSIFIER:TIER=SCORE" in message
    assert "\n" not in message


def test_strategy_applies_over_the_config_and_is_checked_against_it():
    from routecli.config import load_config

    config = load_config()
    upper = config.tier_order[1:]
    cut = parse_strategy("learned@0.7").apply(config)
    assert cut.classifier == "learned" and {cut.thresholds[t] for t in upper} == {0.7}
    some = parse_strategy(f"rules:{upper[-1]}=0.99").apply(config)
    assert some.thresholds[upper[-1]] == 0.99
    assert all(some.thresholds[t] == config.thresholds[t] for t in upper[:-1])
    with pytest.raises(UsageError, match="not a tier above the cheapest"):
        parse_strategy(f"rules:{config.tier_order[0]}=0.1").check(config)
    with pytest.raises(UsageError, match="must rise with the tier order"):
        parse_strategy(f"rules:{upper[0]}=0.9,{upper[-1]}=0.1").check(config)


def test_variant_and_split_parsing():
    assert parse_variant("b=learned@0.5")[0] == "b"
    with pytest.raises(UsageError, match="write NAME=STRATEGY"):
        parse_variant("learned@0.5")
    assert parse_split(None, 3) == (34, 33, 33)
    assert parse_split("70/30", 2) == (70, 30)
    for bad in ("60/30", "50/50/0", "a/b", "100"):
        with pytest.raises(UsageError, match="sum to 100"):
            parse_split(bad, 2)


# ---------------------------------------------------------------- assignment


def test_bucket_is_a_fixed_function_of_test_and_key():
    # pinned: a new version must not move requests between variants of a running test
    assert bucket("t", "key") == bucket("t", "key") == 5714
    assert bucket("other", "key") != bucket("t", "key")


def test_assignment_is_consistent_and_follows_the_split():
    test = two_way(split=(70, 30))
    prompts = [f"prompt number {i}" for i in range(4000)]
    first = [assign(request(p), [test])[1] for p in prompts]
    assert first == [assign(request(p), [test])[1] for p in prompts]  # same prompt, same variant
    share = Counter(first)["a"] / len(prompts)
    assert 0.67 < share < 0.73


def test_by_agent_and_tag_and_who_is_left_out():
    by_agent, by_tag = two_way(by="agent"), two_way(by="tag")
    agents = {f"agent-{i}" for i in range(40)}
    for agent in agents:  # one agent, one variant, whatever it asks
        assert len({assign(request(f"q{i}", agent=agent), [by_agent])[1] for i in range(5)}) == 1
    assert {assign(request("q", agent=a), [by_agent])[1] for a in agents} == {"a", "b"}
    assert assign(request("q"), [by_agent]) is None  # no agent: not in the test
    assert assign(request("q", tags=("x", "y")), [by_tag])[1] == assign(request("z", tags=("x",)), [by_tag])[1]
    assert assign(request("q"), [by_tag]) is None
    assert assign(request("q", tier="premium"), [two_way()]) is None  # forced: no strategy routed it
    assert assign(request("q"), [two_way(status="stopped")]) is None
    name, variant, strategy = assign(request("q"), [two_way()])
    assert name == "t" and strategy.text == {"a": "rules", "b": "learned@0.5"}[variant]


# ---------------------------------------------------------------- the commands and the engine hook


def _start(*variants, by="prompt"):
    args = ["ab", "start", "exp"] + [part for v in variants for part in ("--variant", v)] + ["--by", by]
    result = run(*args)
    assert result.exit_code == 0, result.stderr
    return result


def test_start_list_stop_and_refusals():
    _start("a=rules", "b=learned@0.5")
    again = run("ab", "start", "exp2", "--variant", "a=rules", "--variant", "b=rules")
    assert again.exit_code == 2 and "stop it first: routecli ab stop exp" in again.stderr
    taken = run("ab", "stop", "exp")
    assert taken.exit_code == 0
    assert run("ab", "start", "exp", "-v", "a=rules", "-v", "b=rules").exit_code == 2  # the name is taken
    assert "already stopped" in run("ab", "stop", "exp").stderr
    listed = json.loads(run("ab", "list", "--json").stdout)
    assert [(t["name"], t["status"], t["split"]) for t in listed] == [("exp", "stopped", "50/50")]
    assert listed[0]["variants"] == [{"name": "a", "strategy": "rules"}, {"name": "b", "strategy": "learned@0.5"}]
    assert run("ab", "start", "x", "-v", "a=rules").exit_code == 2  # one variant is no test
    unknown = run("ab", "report", "nope")
    assert unknown.exit_code == 2 and "known: exp" in unknown.stderr


def test_engine_routes_each_request_by_its_variants_strategy_and_records_it(vendor):
    from conftest import ledger_rows

    _start("hi=rules@0.0", "lo=rules@1.0")  # hi sends everything to the strongest tier, lo to the cheapest
    prompts = [f"What is {i} plus {i}?" for i in range(16)]
    for prompt in prompts:
        assert run("ask", prompt).exit_code == 0
    assert run("ask", "--tier", "standard", "forced one").exit_code == 0
    rows = ledger_rows()
    tiers = {row.ab_variant: set() for row in rows}
    for row in rows:
        tiers[row.ab_variant].add(row.tier)
    assert tiers == {"hi": {"premium"}, "lo": {"cheap"}, None: {"standard"}}
    assert {row.ab_test for row in rows if row.ab_variant} == {"exp"}
    assert run("ab", "stop", "exp").exit_code == 0
    assert run("ask", "one more").exit_code == 0
    assert ledger_rows()[-1].ab_test is None  # a stopped test assigns nothing


def test_batch_lines_are_assigned_too(vendor, tmp_path):
    from conftest import ledger_rows

    _start("hi=rules@0.0", "lo=rules@1.0")
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": i, "prompt": f"line {i}"}) + "\n" for i in range(12)))
    assert run("batch", str(source), "--dry-run", "-o", str(tmp_path / "out.jsonl")).exit_code == 0
    rows = ledger_rows()
    assert len(rows) == 12 and {(r.ab_variant, r.tier) for r in rows} == {("hi", "premium"), ("lo", "cheap")}


def test_feedback_takes_attempt_or_request_ids_and_refuses_others(vendor):
    from sqlalchemy import text

    from routecli.config import db_location
    from routecli.store import open_store

    answer = json.loads(run("ask", "--json", "hello").stdout)
    assert run("feedback", answer["id"], "--score", "0.8", "--note", "good").exit_code == 0
    assert run("feedback", answer["id"], "--score", "0.2").exit_code == 0
    missing = run("feedback", "01NOTANID", "--score", "1")
    assert missing.exit_code == 2 and "No attempt or request with id '01NOTANID'" in missing.stderr
    assert "outside 0..1" in run("feedback", answer["id"], "--score", "1.5").stderr
    with open_store(db_location()) as store, store.read() as conn:
        rows = conn.execute(text("SELECT request_id, attempt_id, score, note FROM feedback ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [(answer["id"], answer["id"], 0.8, "good"), (answer["id"], answer["id"], 0.2, None)]


def test_report_counts_requests_and_picks_the_cheaper_strategy(vendor):
    _start("hi=rules@0.0", "lo=rules@1.0")
    ids = {}
    for i in range(80):
        answer = json.loads(run("ask", "--json", f"Say hello number {i}").stdout)
        ids[answer["id"]] = answer
    for attempt_id in list(ids)[:10]:
        assert run("feedback", attempt_id, "--score", "1").exit_code == 0
    report = json.loads(run("ab", "report", "exp", "--json").stdout)
    variants = report["variants"]
    assert variants["hi"]["requests"] + variants["lo"]["requests"] == 80
    assert variants["hi"]["feedback"]["n"] + variants["lo"]["feedback"]["n"] == 10
    assert variants["hi"]["cost"]["mean"] > variants["lo"]["cost"]["mean"]
    low, high = variants["lo"]["cost"]["ci95"]
    assert low <= variants["lo"]["cost"]["mean"] <= high
    assert (variants["hi"]["requests"], variants["lo"]["requests"]) == (41, 39)  # fixed by the prompts' hashes
    assert report["winner"] == "lo" and "lo wins on cost per request" in report["verdict"]
    table = run("ab", "report", "exp")
    assert table.exit_code == 0 and "cost / request" in table.stdout and report["verdict"][:20] in table.stdout


# ---------------------------------------------------------------- statistics


def test_significance_matches_published_values():
    assert student_t_two_sided(2.0, 10) == pytest.approx(0.073388, abs=1e-6)
    assert student_t_two_sided(2.228138852, 10) == pytest.approx(0.05, abs=1e-8)
    assert student_t_two_sided(12.0, 2) == pytest.approx(1 - 12 / 146 ** 0.5, abs=1e-9)
    z, p = two_proportions(50, 100, 65, 100)
    assert (z, p) == (pytest.approx(-2.14560, abs=1e-4), pytest.approx(0.031905, abs=1e-5))
    assert wilson(5, 10) == (pytest.approx(0.236593, abs=1e-6), pytest.approx(0.763407, abs=1e-6))
    same = Moments()
    for value in (1, 2, 3, 4, 5):
        same.add(value)
    assert welch(same, same) == (0.0, 1.0)


def _tally(costs, feedback=(), escalated=0, errors=0) -> Tally:
    tally = Tally(requests=len(costs), escalated=escalated, errors=errors)
    for cost in costs:
        tally.cost.add(cost)
    for score in feedback:
        tally.feedback.add(score)
    return tally


def test_winner_needs_significance_enough_requests_and_no_worse_quality():
    cheap, dear = [100 + i % 7 for i in range(40)], [130 + i % 7 for i in range(40)]
    assert pick_winner({"a": _tally(dear), "b": _tally(cheap)}, "cost")[0] == "b"
    few = pick_winner({"a": _tally(dear[:10]), "b": _tally(cheap[:10])}, "cost")
    assert few[0] is None and "fewer than 30" in few[1]
    noise = [100 + (i * 37) % 50 for i in range(40)]
    same = pick_winner({"a": _tally(noise), "b": _tally(list(reversed(noise)))}, "cost")
    assert same[0] is None and "no variant is better" in same[1]
    worse = pick_winner({"a": _tally(dear, feedback=[0.9] * 30 + [0.8] * 10),
                         "b": _tally(cheap, feedback=[0.3] * 30 + [0.4] * 10)}, "cost")
    assert worse[0] is None and "significantly worse on mean feedback score" in worse[1]
    three = {"a": _tally(dear), "b": _tally(cheap), "c": _tally([115 + i % 7 for i in range(40)])}
    winner, why, comparisons = pick_winner(three, "cost")
    assert winner == "b" and len({(c["a"], c["b"]) for c in comparisons}) == 3


def test_a_request_counts_all_its_attempts_and_dry_runs_and_unknown_prices_stay_out():
    from routecli.analytics.ab_report import tallies
    from routecli.config import db_location
    from routecli.store import Attempt, open_store

    def attempt(request_id, variant, **fields):
        values = dict(request_id=request_id, source="ask", prompt_hash="h", classifier="rules", classifier_version="1",
                      score=0.5, tier="cheap", provider="openai", model="m", phase="rules", status="ok",
                      cost_micros=100, ab_test="exp", ab_variant=variant)
        return Attempt(**{**values, **fields})

    with open_store(db_location()) as store:
        store.record(
            attempt("r1", "a", status="error", cost_micros=None),  # failed, then a fallback answered
            attempt("r1", "a", step="fallback", cost_micros=300),
            attempt("r2", "a", confidence=0.2),  # answered weakly, then escalated
            attempt("r2", "a", step="escalation", cost_micros=900, confidence=0.9),
            attempt("r2", "a", source="judge", cost_micros=5),
            attempt("r3", "a", status="dry-run", cost_micros=None),
            attempt("r4", "a", cost_micros=None),  # answered, price unknown
            attempt("r5", "b", status="error", cost_micros=None),
            attempt("r6", "other-test", ab_test="other"),
        )
        found = tallies(store, "exp", ["a", "b"])
    a, b = found["a"], found["b"]
    assert (a.requests, a.dry_runs, a.unpriced, a.escalated, a.errors) == (3, 1, 1, 1, 0)
    assert (a.cost.n, a.cost.total) == (2, 300 + 100 + 900 + 5)
    assert (a.confidence.n, a.confidence.total) == (1, 0.2)  # the first answer's confidence, not the escalated one
    assert (b.requests, b.errors, b.cost.total) == (1, 1, 0)  # a failed call that cost nothing costs $0
