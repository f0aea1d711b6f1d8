"""Batch throughput against the local fake vendor with a fixed latency per request.

    python benchmarks/batch_throughput.py [--prompts 10000] [--latency 0.05] [--levels 1,16,64,256]

For each concurrency level a fresh child process runs `routecli batch` in-process (the same
code path as the command: routing, sending, ledger, results file) against tests/fakevendor.py
started with --latency, and reports: the command's wall time (interpreter start-up left out)
next to the ideal N x latency / concurrency, requests/s, ledger rows/s, its peak RSS, and CPU
per request in the client and in the fake server (to see which side was the limit).
Concurrency 1 runs fewer prompts (--small, default 200: 10,000 would take over 8 minutes),
and says so. Target (issue 4): at concurrency 64, within 90% of ideal; peak RSS under 250 MB.
--loops asyncio,uvloop runs every level on each event loop in turn (ROUTECLI_LOOP): side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
KEY = "bench-key-0123456789"


def child(args: argparse.Namespace) -> None:
    """Runs in its own process: one batch, then one JSON line of figures on stdout."""
    os.environ["ROUTECLI_PROGRESS_SECONDS"] = "3600"  # no progress lines in the figures
    from routecli.cli import app
    from routecli.store import open_store
    from routecli.store.runs import counts, list_runs

    home = Path(os.environ["ROUTECLI_HOME"])
    argv = ["batch", str(home / "prompts.jsonl"), "--output", str(home / "results.jsonl"),
            "--concurrency", str(args.concurrency)]
    started = time.perf_counter()
    try:
        app(argv, standalone_mode=False)
    except SystemExit as exc:  # typer.Exit is raised as SystemExit outside standalone mode on some versions
        if exc.code:
            raise
    wall = time.perf_counter() - started
    store = open_store(home / "routecli.db")
    [run] = list_runs(store, limit=1)
    total = counts(store, [run.id])[run.id]
    store.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak_kb = usage.ru_maxrss
    lines = sum(1 for _ in open(home / "results.jsonl", encoding="utf-8"))
    print(json.dumps({"wall": wall, "ok": total.ok, "attempts": total.attempts, "output_lines": lines,
                      "peak_rss_mb": peak_kb / 1024, "cpu": usage.ru_utime + usage.ru_stime}))


def write_inputs(home: Path, prompts: int, root: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "prompts.jsonl", "w", encoding="utf-8") as fh:
        for i in range(prompts):
            fh.write(json.dumps({"id": f"q{i}", "prompt": f"Question {i}: what is the capital of country {i}?"}) + "\n")
    (home / "config.toml").write_text(
        f'[providers.openai]\nbase_url = "{root}/v1"\npricing_provider = "openai"\n'
        '[routing]\ntier_order = ["cheap"]\nthresholds = {}\n'
        '[tiers.cheap]\nmodels = ["openai:gpt-5.4-nano"]\n'
    )


def run_level(concurrency: int, prompts: int, root: str, workdir: Path, loop: str = "") -> dict:
    home = workdir / f"c{concurrency}"
    write_inputs(home, prompts, root)
    env = {**os.environ, "ROUTECLI_HOME": str(home), "OPENAI_API_KEY": KEY, "NO_COLOR": "1"}
    env.pop("ROUTECLI_DB", None)
    if loop:
        env["ROUTECLI_LOOP"] = loop
    done = subprocess.run([sys.executable, __file__, "--child", "--concurrency", str(concurrency)],
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"concurrency {concurrency} failed:\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures.update(concurrency=concurrency, prompts=prompts)
    return figures


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process (Linux), to see whether the fake server kept up."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(fig: dict, latency: float) -> str:
    ideal = fig["prompts"] * latency / fig["concurrency"]
    wall = fig["wall"]
    return (f"{fig['concurrency']:>5} {fig['prompts']:>7,} {wall:>8.2f} {ideal:>8.2f} {ideal / wall:>7.0%} "
            f"{fig['prompts'] / wall:>8.0f} {fig['attempts'] / wall:>8.0f} {fig['peak_rss_mb']:>8.0f}"
            f" {fig['cpu'] / fig['prompts'] * 1e6:>10.0f} {fig['server_cpu'] / fig['prompts'] * 1e6:>10.0f}"
            f"{'' if fig['ok'] == fig['prompts'] == fig['output_lines'] else '  INCOMPLETE'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=200, help="prompts at concurrency 1")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--levels", default="1,16,64,256")
    parser.add_argument("--loops", default="",
                        help="event loops (ROUTECLI_LOOP) to run each level on in turn, e.g. asyncio,uvloop; "
                             "default: the one batch picks")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    import fakevendor

    print(f"batch throughput: fake vendor with {args.latency * 1000:.0f} ms latency, {os.cpu_count()} CPUs")
    print(f"{'conc':>5} {'prompts':>7} {'wall s':>8} {'ideal s':>8} {'of ideal':>7} {'req/s':>8} "
          f"{'rows/s':>8} {'RSS MB':>8} {'CPU µs/req':>10} {'server µs':>10}" + ("  loop" if args.loops else ""))
    with tempfile.TemporaryDirectory(prefix="routecli-bench-") as tmp:
        for level in (int(x) for x in args.levels.split(",")):
            for loop in args.loops.split(","):  # side by side: each loop in turn, level by level
                root, server = fakevendor.start_server(key=KEY, latency=args.latency)
                try:
                    prompts = args.small if level == 1 else args.prompts
                    figures = run_level(level, prompts, root, Path(tmp) / (loop or "default"), loop)
                    figures["server_cpu"] = cpu_seconds(server.pid)
                    print(report(figures, args.latency) + (f"  {loop}" if loop else ""), flush=True)
                finally:
                    fakevendor.stop_server(server)
    if args.small != args.prompts and "1" in args.levels.split(","):
        print(f"(concurrency 1 ran {args.small} prompts, not {args.prompts:,}: the ideal scales with the count)")


if __name__ == "__main__":
    main()
