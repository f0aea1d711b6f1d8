"""Start-up cost, side by side: median wall time of 10 runs each of

    python -c pass                      (the floor: the interpreter itself)
    routecli --help                     (must import nothing heavy)
    routecli ask --dry-run "hi"         (decides and writes one ledger row; no HTTP, no price data)

Run: python benchmarks/startup.py [--runs N]
Each run is a fresh process with its own empty ROUTECLI_HOME for the first dry run,
then the same home (a realistic warm ledger) for the rest.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def routecli_command() -> list[str]:
    script = Path(sys.executable).with_name("routecli")
    if script.exists():
        return [str(script)]
    found = shutil.which("routecli")
    return [found] if found else [sys.executable, "-m", "routecli"]


def median_ms(argv: list[str], env: dict[str, str], runs: int) -> float:
    subprocess.run(argv, env=env, capture_output=True, check=True)  # warm the OS file cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=True)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="routecli-bench-")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(ROUTECLI_HOME=home, NO_COLOR="1")
    routecli = routecli_command()
    cases = [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("routecli --help", routecli + ["--help"]),
        ('routecli ask --dry-run "hi"', routecli + ["ask", "--dry-run", "hi"]),
    ]
    print(f"median wall time of {args.runs} runs ({sys.executable})")
    for label, argv in cases:
        print(f"  {label:32} {median_ms(argv, env, args.runs):8.1f} ms")
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
