"""benchmarks/routing_quality.py runs end to end on a small graded file and prints every section."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_routing_quality_benchmark_prints_kfold_transfer_and_margins(tmp_path):
    rows = []
    for i in range(48):
        if i % 2:
            prompt, weak = f"Solve for x and calculate exactly how many solutions: {i}x + 7 = {3 * i}.", 0.2
        else:
            prompt, weak = f"Give me some ideas and tips for a party plan number {i}; write a short poem too.", 0.9
        if i % 3 == 0:
            prompt = f"Write a python function number {i} that returns a sorted list. " + prompt
        scores = {"big": 0.9, "small": weak, "mid": 0.5 if i % 2 else 0.8, "tiny": weak / 2}
        rows.append(json.dumps({"id": str(i), "prompt": prompt, "scores": scores}))
    (tmp_path / "pairs.jsonl").write_text("\n".join(rows) + "\n")
    (tmp_path / "stats.json").write_text(json.dumps({"big vs small": {"strong": "big", "weak": "small"}}))
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "routing_quality.py"), "--data", str(tmp_path), "--folds", "3",
         "--repeats", "2", "--seeds", "5", "--draws", "20", "--no-embed"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert "k-fold (3-fold x 2)" in out.stdout and "transfer vs rules" in out.stdout
    summary = out.stdout.split("mean APGR over the pairs:")[1].split()
    learned = float(summary[summary.index("learned") + 1])
    assert learned > 0.7  # the math half needs the strong model and the features see it
