"""`routecli train` and `routecli eval`: the RouteLLM metrics on hand-computed cases, training that
gives the same bytes twice, and clear one-line errors for bad input."""

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from routecli.cli import app
from routecli.routing.evaluate import apgr, auc, bootstrap_margin, cpt, curve, evaluate, folds, pgr, summarise_random
from routecli.routing.train import Example, Recipe, dumps, fit, pair_examples, train_file

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "arena_bench_v1"
STRONG, WEAK = "big-model", "small-model"


def run(*args):
    return CliRunner().invoke(app, list(args))


def write_pairs(path: Path, rows: int = 60) -> Path:
    """Math questions only the strong model gets right; open-ended asks both answer well."""
    lines = []
    for i in range(rows):
        if i % 2:
            prompt, weak = f"Solve for x and show how many solutions: {i}x + 7 = {3 * i}. Calculate exactly.", 0.2
        else:
            prompt, weak = f"Give me some ideas and tips for a birthday party plan number {i}, explain them.", 0.9
        scores = {STRONG: 0.9, WEAK: weak, "mid-model": (0.5 if i % 2 else 0.8), "tiny-model": weak / 2}
        lines.append(json.dumps({"id": str(i), "prompt": prompt, "category": "synthetic", "scores": scores}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------- metrics by hand


def test_oracle_curve_apgr_and_cpt_by_hand():
    strong, weak = [1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0]
    points = curve([1.0, 0.0, 1.0, 0.0], strong, weak, points=2)  # thresholds 0, 0.5, 1
    assert points == [(0.0, 0.5), (0.5, 1.0), (1.0, 1.0)]
    gains = pgr(points, 1.0, 0.5)
    assert gains == [(0.0, 0.0), (0.5, 1.0), (1.0, 1.0)]
    assert apgr(gains) == pytest.approx(0.75)  # 0.5 * (0 + 1) / 2 + 0.5 * (1 + 1) / 2
    assert cpt(gains, 0.5) == pytest.approx(0.25) and cpt(gains, 0.8) == pytest.approx(0.4)
    assert cpt([(0.0, 0.0), (1.0, 0.4)], 0.5) is None  # never reached


def test_a_backwards_router_scores_below_half_and_ties_follow_the_diagonal():
    strong, weak = [1.0] * 4, [0.0, 1.0, 0.0, 1.0]
    assert apgr(pgr(curve([0.0, 1.0, 0.0, 1.0], strong, weak, points=2), 1.0, 0.5)) == pytest.approx(0.25)
    assert apgr(pgr(curve([0.3] * 4, strong, weak), 1.0, 0.5)) == pytest.approx(0.5)  # one tie: a straight line


def test_auc_counts_ties_as_half():
    assert auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == pytest.approx(0.75)
    assert auc([0.5] * 4, [False, True, False, True]) == pytest.approx(0.5)
    assert auc([0.1, 0.2], [True, True]) is None  # no negatives: undefined


def test_random_router_is_near_half():
    rng = random.Random(7)
    examples = [Example(str(i), f"p{i}", "", rng.random(), rng.random()) for i in range(200)]
    result = summarise_random(examples, seeds=50)
    assert result["apgr"] == pytest.approx(0.5, abs=0.04) and result["auc"] == pytest.approx(0.5, abs=0.04)


def test_folds_are_stable_and_balanced():
    examples = [Example(str(i), f"prompt {i}", "", 1.0, 0.0) for i in range(23)]
    assigned = folds(examples, 5)
    assert assigned == folds(list(examples), 5) and sorted(set(assigned)) == [0, 1, 2, 3, 4]
    assert max(assigned.count(f) for f in range(5)) - min(assigned.count(f) for f in range(5)) <= 1


def test_repeated_folds_reshuffle_but_stay_stable_and_balanced():
    examples = [Example(str(i), f"prompt {i}", "", 1.0, 0.0) for i in range(40)]
    first, again, other = folds(examples, 5, 1), folds(examples, 5, 1), folds(examples, 5, 2)
    assert first == again and first != folds(examples, 5) and first != other
    for assigned in (first, other):
        assert sorted(assigned.count(f) for f in range(5)) == [8] * 5


def test_bootstrap_margin_is_zero_against_itself_and_clear_for_an_oracle():
    rng = random.Random(3)
    examples = [Example(str(i), f"p{i}", "", 1.0, float(rng.random() < 0.5)) for i in range(80)]
    oracle = [ex.gap for ex in examples]  # 1 exactly where the weak model failed
    backwards = [-g for g in oracle]
    same = bootstrap_margin(oracle, oracle, examples, draws=50)
    assert same == {"mean": 0.0, "low": 0.0, "high": 0.0}
    clear = bootstrap_margin(oracle, backwards, examples, draws=50)
    assert 0.0 < clear["low"] <= clear["mean"] <= clear["high"]
    versus_random = bootstrap_margin(oracle, 0.5, examples, draws=50)
    assert versus_random["low"] > 0.1  # the oracle's APGR is about 0.75 on every resample


# ---------------------------------------------------------------- training


def test_panel_weighs_models_near_the_weak_one_more():
    """far-model fails everything (like llama-13b on Arena): with panel_tau it stops counting."""
    rows = []
    for i in range(24):
        weak, near = (0.4, 0.7) if i % 2 else (0.6, 0.3)  # both average 0.5
        rows.append({"id": str(i), "prompt": f"p{i}", "scores": {STRONG: 0.9, WEAK: weak, "near-model": near,
                                                                 "far-model": 0.1 if i % 3 else 0.0}})
    flat = pair_examples(rows, STRONG, WEAK, recipe=Recipe(panel_tau=None, panel_min=2))
    near = pair_examples(rows, STRONG, WEAK, recipe=Recipe(panel_tau=0.01, panel_min=2))
    for row, a, b in zip(rows, flat, near):
        g = row["scores"]
        assert a.difficulty == pytest.approx(1 - (g[WEAK] + g["near-model"] + g["far-model"]) / 3)
        assert b.difficulty == pytest.approx(1 - (g[WEAK] + g["near-model"]) / 2, abs=1e-9)
    assert Recipe().panel_tau is not None  # the shipped recipe weighs its panel


def test_recipe_of_older_weights_keeps_its_meaning():
    old = Recipe.from_dict({"l2_numeric": 0.1, "min_df": 5})  # written before words / panel_tau existed
    assert old.words is True and old.panel_tau is None and old.l2_numeric == 0.1
    assert Recipe.from_dict(Recipe().as_dict()) == Recipe()


def test_words_are_features_only_when_the_recipe_asks():
    examples = [Example(str(i), "", "", 1.0, float(i % 2), numeric={"math": float(i % 2)},
                        sparse={"w:ideas"} if i % 2 else {"w:solve"}) for i in range(30)]
    assert not any(t.startswith("w:") for t in fit(examples, Recipe())["tokens"])
    with_words = fit(examples, Recipe(words=True, min_df=2))["tokens"]
    assert {"w:ideas", "w:solve"} <= set(with_words)



def test_training_is_reproducible_to_the_byte(tmp_path):
    data = write_pairs(tmp_path / "pairs.jsonl")
    first = dumps(train_file(data, STRONG, WEAK))
    assert first == dumps(train_file(data, STRONG, WEAK))
    weights = json.loads(first)
    assert weights["pair"] == {"strong": STRONG, "weak": WEAK} and weights["trained_on"]["rows"] == 60
    assert str(tmp_path) not in first  # the file's name and hash are recorded, never where it lived


def test_train_and_eval_commands(tmp_path):
    data = write_pairs(tmp_path / "pairs.jsonl")
    out = tmp_path / "w.json"
    result = run("train", str(data), "--strong", STRONG, "--weak", WEAK, "-o", str(out))
    assert result.exit_code == 0, result.output
    assert out.exists() and "trained on 60 prompts" in result.stderr
    result = run("eval", str(data), "--strong", STRONG, "--weak", WEAK, "--weights", str(out), "--folds", "5",
                 "--plot", str(tmp_path / "curve.svg"))
    assert result.exit_code == 0, result.output
    assert "5-fold cross-validated" in result.stdout and "PGR" in result.stdout
    for name in ("learned", "rules", "random"):
        assert f"\n{name} " in result.stdout
    assert (tmp_path / "curve.svg").read_text().startswith("<svg")
    result = run("eval", str(data), "--strong", STRONG, "--weak", WEAK, "--weights", str(out), "--json", "--transfer")
    report = json.loads(result.stdout)
    assert report["routers"]["learned"]["apgr"] == pytest.approx(0.75)  # the best possible: half need strong
    assert set(report["transfer"]["groups"]) <= {"code", "math", "writing", "other"}
    shown = run("eval", str(data), "--strong", STRONG, "--weak", WEAK, "--weights", str(out), "--transfer").stdout
    assert "all, pooled" in shown and "APGR by transfer" in shown
    pooled = report["transfer"]["pooled"]
    assert pooled["n"] == 60 and {"learned", "rules", "random"} <= set(pooled)
    assert all(0.0 <= pooled[name]["apgr"] <= 1.0 for name in ("learned", "rules", "random"))


def test_eval_uses_shipped_weights_as_they_are_on_unseen_prompts(tmp_path):
    data = write_pairs(tmp_path / "pairs.jsonl")
    report = evaluate(data, STRONG, WEAK, k=3, seeds=5)
    assert report["routers"]["learned"]["how"].startswith("weights as shipped")
    assert report["groups"]["category"]["synthetic"]["n"] == 60


def test_png_plot_needs_matplotlib_or_says_which_extra(tmp_path):
    data = write_pairs(tmp_path / "pairs.jsonl")
    result = run("eval", str(data), "--strong", STRONG, "--weak", WEAK, "--plot", str(tmp_path / "c.png"))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert result.exit_code == 2 and "routecli[plot]" in result.stderr
    else:
        assert result.exit_code == 0 and (tmp_path / "c.png").stat().st_size > 0


@pytest.mark.parametrize(
    "make, args, fragment",
    [
        (None, ("--strong", STRONG, "--weak", WEAK), "No data file"),
        ("pairs", ("--strong", "nobody", "--weak", WEAK), "--strong 'nobody' is not graded in"),
        ("pairs", ("--strong", STRONG, "--weak", STRONG), "same model"),
        ("few", ("--strong", STRONG, "--weak", WEAK), "need at least 20"),
        ("junk", ("--strong", STRONG, "--weak", WEAK), "line 1 is not JSON"),
        ("shape", ("--strong", STRONG, "--weak", WEAK), "needs \"prompt\""),
    ],
)
def test_bad_input_is_one_line_naming_the_fix(tmp_path, make, args, fragment):
    data = tmp_path / "pairs.jsonl"
    if make == "pairs":
        write_pairs(data)
    elif make == "few":
        write_pairs(data, rows=5)
    elif make == "junk":
        data.write_text("{oops\n")
    elif make == "shape":
        data.write_text('{"prompt": 3}\n')
    for command in ("train", "eval"):
        result = run(command, str(data), *args)
        assert result.exit_code == 2, result.output
        assert fragment in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_eval_refuses_unknown_router_and_odd_folds(tmp_path):
    data = write_pairs(tmp_path / "pairs.jsonl")
    result = run("eval", str(data), "--strong", STRONG, "--weak", WEAK, "--router", "magic")
    assert result.exit_code == 2 and "use one of: learned, rules, random" in result.stderr
    result = run("eval", str(data), "--strong", STRONG, "--weak", WEAK, "--folds", "1")
    assert result.exit_code == 2 and "--folds 1" in result.stderr
    result = run("eval", str(data), "--strong", STRONG, "--weak", WEAK, "--plot", str(tmp_path / "c.pdf"))
    assert result.exit_code == 2 and ".svg or .png" in result.stderr


@pytest.mark.skipif(not (SHARED / "pairs.jsonl").exists(), reason="shared Arena data not checked out beside the repo")
def test_learned_beats_rules_and_random_on_the_shared_data():
    report = evaluate(SHARED / "pairs.jsonl", "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1", seeds=20,
                      transfer=True)
    apgrs = {name: r["apgr"] for name, r in report["routers"].items()}
    assert "cross-validated" in report["routers"]["learned"]["how"]
    assert apgrs["learned"] > apgrs["rules"] + 0.02 and apgrs["learned"] > apgrs["random"] + 0.03, apgrs
    # Trained on three task types, scored on the fourth: the margin must survive the move.
    moved = {name: r["apgr"] for name, r in report["transfer"]["pooled"].items() if name != "n"}
    assert moved["learned"] > moved["rules"] + 0.02 and moved["learned"] > moved["random"] + 0.03, moved
