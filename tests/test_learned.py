"""The learned classifier: shipped weights load, scores are bounded, deterministic and explained."""

import hashlib
import json
from pathlib import Path

import pytest

from routecli.config import load_config
from routecli.domain import Message, Request
from routecli.errors import UsageError
from routecli.routing import CLASSIFIERS, learned
from routecli.routing.features import featurize
from routecli.routing.train import Example, Recipe, dumps, fit, train_file

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "arena_bench_v1"
ROOT = Path(__file__).resolve().parents[1]


def req(text, **kw):
    return Request((Message("user", text),), **kw)


def test_shipped_weights_are_registered_and_named_by_their_content():
    scorer, version = CLASSIFIERS["learned"]
    digest = hashlib.sha256(learned.DEFAULT_WEIGHTS.read_bytes()).hexdigest()[:8]
    assert version == f"learned-{digest}"
    weights = json.loads(learned.DEFAULT_WEIGHTS.read_text())
    assert weights["format"] == "routecli-learned-1" and weights["pair"]["strong"] == "gpt-4-1106-preview"
    # Signals and text shape only: words learned from 300 prompts name their topics and do not transfer.
    assert weights["recipe"]["words"] is False and not any(key.startswith("w:") for key in weights["tokens"])
    assert weights["numeric"] and any(key.startswith("simple=") for key in weights["tokens"])


@pytest.mark.parametrize(
    "text",
    ["", "hi", "x" * 200_000, "```python\n" * 500, "prove " * 10_000, "\udcff\udcfe binary \x00 junk", "ÄÖÜ ß 漢字 🎉"],
)
def test_scores_are_bounded_deterministic_and_explained(text):
    first, second = learned.score_request(req(text)), learned.score_request(req(text))
    assert 0.0 <= first[0] <= 1.0
    assert first == second
    assert first[1] and all(isinstance(reason, str) and reason for reason in first[1])


def test_inference_features_match_training_features():
    """Scoring a request (vocabulary-limited features) equals scoring its training featurisation."""
    model = learned.load()
    for text in ["Write a python function to parse SQL", "Give me ideas for a party plan", "Solve 3x + 7 = 22"]:
        numeric, sparse, signals = featurize(req(text))
        example = Example("1", text, "", 1.0, 0.0, numeric=numeric, sparse=sparse, signals=signals)
        assert model.score_features(example) == pytest.approx(model.score(req(text))[0], abs=1e-12)


def test_a_model_trained_with_words_scores_requests_as_it_scored_its_training_features():
    texts = ["Write a python function to parse SQL", "Give me ideas for a party plan", "Solve 3x + 7 = 22 for x",
             "Write a poem about the sea", "Solve the python parse bug"] * 4
    examples = []
    for i, text in enumerate(texts):
        numeric, sparse, signals = featurize(req(text))
        examples.append(Example(str(i), text, "", 1.0, float("Solve" in text), numeric=numeric, sparse=sparse, signals=signals))
    model = learned.model_from(fit(examples, Recipe(words=True, bigrams=True, min_df=2)))
    assert model.words and any(" " in key for key in model.tokens)  # words and word pairs were learned
    for example in examples[:5]:
        assert model.score_features(example) == pytest.approx(model.score(req(example.prompt))[0], abs=1e-12)


def test_reasons_name_what_pushed_the_score():
    simple = learned.score_request(req("What is the capital of France?"))
    assert any("simple task" in reason for reason in simple[1])
    hard = learned.score_request(req("Prove step by step that the algorithm is correct and analyze its complexity."))
    assert any("reasoning words" in reason for reason in hard[1]) and hard[0] > simple[0]
    code = learned.score_request(req("Write a Rust function and a SQL query; the API must compile."))
    assert any("code" in reason for reason in code[1])
    assert all(reason[-5] in "+-" for reason in code[1])  # each reason is signed: "... +0.31"


def test_a_signal_value_never_seen_in_training_still_gets_its_prior():
    weights = {"format": "routecli-learned-1", "bias": 0.0, "numeric": {}, "tokens": {},
               "recipe": {"prior": {"simple=*": -1.0}}}
    model = learned.model_from(weights)
    assert model.score(req("Translate this into French"))[0] < 0.5 == model.score(req("Tell me about tides"))[0]


def test_bad_weights_files_are_clear_errors(tmp_path):
    with pytest.raises(UsageError, match="routecli train"):
        learned.load(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(UsageError, match="retrain"):
        learned.load(broken)
    other = tmp_path / "other.json"
    other.write_text('{"format": "something-else"}')
    with pytest.raises(UsageError, match="not a routecli weights file"):
        learned.load(other)
    assert learned.version_of(tmp_path / "missing.json") == "learned-missing"


def test_regularisation_pulls_toward_the_prior_and_data_can_overrule_it():
    examples = []
    for i in range(40):
        hard = i % 2 == 0
        examples.append(Example(str(i), "", "", 1.0, 0.0 if hard else 1.0, numeric={"math": float(hard)}, sparse=set()))
    flat = [0.5] * 40  # labels that say nothing about math
    assert fit(examples, Recipe(prior={}), labels=flat)["numeric"]["math"][2] == 0.0
    pulled = Recipe(prior={"math": 0.3}, l2_numeric=0.1)
    assert 0.05 < fit(examples, pulled, labels=flat)["numeric"]["math"][2] < 0.3
    stronger = Recipe(prior={"math": 0.3}, l2_numeric=1.0)
    assert fit(examples, pulled, labels=flat)["numeric"]["math"][2] < fit(examples, stronger, labels=flat)["numeric"]["math"][2]
    assert fit(examples, pulled)["numeric"]["math"][2] > 1.0  # labels that do


@pytest.mark.skipif(not (SHARED / "pairs.jsonl").exists(), reason="shared Arena data not checked out beside the repo")
def test_shipped_weights_are_what_the_script_makes():
    """If this fails after a change to signals.py or features.py: run python scripts/train_weights.py."""
    fresh = dumps(train_file(SHARED / "pairs.jsonl", "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"))
    assert fresh == learned.DEFAULT_WEIGHTS.read_text(encoding="utf-8"), "run python scripts/train_weights.py"


@pytest.mark.skipif(not (SHARED / "pairs.jsonl").exists(), reason="shared Arena data not checked out beside the repo")
def test_default_thresholds_split_the_shared_prompts_50_30_20():
    config = load_config()
    assert config.classifier == "learned"
    prompts = [json.loads(line)["prompt"] for line in (SHARED / "pairs.jsonl").open(encoding="utf-8")]
    scores = [learned.score_request(req(p))[0] for p in prompts]
    cheap = sum(s < config.thresholds["standard"] for s in scores) / len(scores)
    premium = sum(s >= config.thresholds["premium"] for s in scores) / len(scores)
    assert cheap == pytest.approx(0.5, abs=0.05) and premium == pytest.approx(0.2, abs=0.05)


def test_ascii_text_counts_the_same_symbols_and_digits_as_any_text():
    """text_stats counts symbols and digits of ASCII text by deleting bytes: the same set as its regex."""
    from routecli.routing import features

    assert set(features._SYMBOL_BYTES.decode()) == {chr(c) for c in range(128) if features._SYMBOLS.match(chr(c))}
    text = "def f(x): return {'a': [1, 2]} # 3 <= 4; a_b | c & d ^ e % f $ g @ h ~ `i` \\ j * k / 10"
    for sample in (text, text + " é"):  # the second is not ASCII: counted by the regex
        stats = features.text_stats(sample, sample.lower(), [], {})
        assert stats["t:symbol_ratio"] == len(features._SYMBOLS.findall(text)) / len(sample)
        assert stats["t:digit_ratio"] == sum(ch.isdigit() for ch in text) / len(sample)
