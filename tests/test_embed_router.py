"""The embedding router measured by benchmarks/routing_quality.py (benchmarks/embed_router.py).

Not a routecli dependency: these tests skip unless its packages are installed
(numpy for the ridge part; onnxruntime, tokenizers and the MiniLM files for embeddings)."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _module():
    spec = importlib.util.spec_from_file_location("embed_router", BENCHMARKS / "embed_router.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


embed_router = _module()


def test_missing_names_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # an import of it now fails
    assert "onnxruntime" in embed_router.missing()


def test_ridge_scores_rank_held_out_rows_by_what_the_other_parts_learned():
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(60, 8))
    labels = list(vectors[:, 0] * 2 + rng.normal(scale=0.1, size=60))  # the label is the first coordinate
    parts = [i % 3 for i in range(60)]
    scores = embed_router.ridge_scores(vectors, labels, parts, alpha=1.0)
    assert np.corrcoef(scores, labels)[0, 1] > 0.95
    shuffled = embed_router.ridge_scores(vectors, list(rng.permutation(labels)), parts, alpha=1.0)
    assert abs(np.corrcoef(shuffled, labels)[0, 1]) < 0.5  # nothing to learn: no ranking either


def test_blend_standardises_each_router_before_averaging():
    blended = embed_router.blend([0.0, 1.0, 2.0], [100.0, 300.0, 200.0], weight_b=0.5)
    assert blended == pytest.approx([-1.2247449, 0.6123724, 0.6123724])  # z-scores, not raw scales
    assert embed_router.blend([1.0, 2.0], [5.0, 5.0], weight_b=0.5) == pytest.approx([-0.5, 0.5])


@pytest.mark.skipif(embed_router.missing() is not None, reason=f"embedding router not installed: {embed_router.missing()}")
def test_minilm_vectors_are_unit_length_and_closer_for_related_prompts():
    import numpy as np

    embed = embed_router.Embedder()
    a, b, c = embed.many(["How do I sort a list in Python?", "Sorting a python list", "Write a poem about the sea"])
    assert a.shape == (384,) and np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)
    assert float(a @ b) > float(a @ c) + 0.3
    assert embed("x" * 50_000).shape == (384,)  # truncated to 256 word pieces, not an error
