"""What the ledger's database does to `routecli serve`'s latency: SQLite, PostgreSQL on this
machine, and PostgreSQL across a network (team mode), side by side.

    python benchmarks/serve_ledger.py [--rtt-ms 2] [--levels 64:0.5] [--requests 640] [--rounds 2]

Each ledger gets a serve of its own, with and without a daily budget (a budget makes every request
hold its worst case in the ledger before the call, a write transaction of its own, shared only with the
requests reserving at the same moment; the row's commit frees it). The PostgreSQL
server is a throwaway cluster (tests/pgserver.py: Debian's postgresql packages). "Across a
network" is that server behind a proxy (this file, run with --proxy) that holds every chunk
--rtt-ms / 2 each way: a database in the same region is ~0.5-2 ms away.

As in serve_overhead.py, the same requests go straight to the fake vendor and through each serve,
the paths taking turns, and the script prints the request-by-request p50 and p99 each serve adds,
its CPU per request, and the ledger rows each serve wrote against the requests it was sent.
Figures, before and after serve moved its store work off the event loop: README.md, "Team mode".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serve_overhead as bench  # noqa: E402  (puts tests/ and the project on the path)

PROXY = "--proxy"  # argv[1] of the proxy process: target host:port, then the one-way delay in ms
BUDGET = "[budgets]\ndaily = 100000\n"  # never reached: every request holds, commits and releases


async def _proxy(target: str, delay: float) -> None:
    host, port = target.rsplit(":", 1)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def drain() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())
                writer.write(data)
            writer.close()

        drainer = asyncio.create_task(drain())
        try:
            while data := await reader.read(65536):
                queue.put_nowait((loop.time() + delay, data))
        except ConnectionError:
            pass
        queue.put_nowait((0.0, b""))
        await drainer

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


def start_proxy(target_port: int, rtt_ms: float) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen([sys.executable, __file__, PROXY, f"127.0.0.1:{target_port}", str(rtt_ms / 2)],
                               stdout=subprocess.PIPE, text=True)
    return process, int(process.stdout.readline())


@contextlib.contextmanager
def postgres(rtt_ms: float) -> Iterator[tuple[Any, int | None]]:
    """A throwaway PostgreSQL server and the port of the proxy that puts it rtt_ms away; (None, None)
    without server binaries here (the SQLite runs go on)."""
    import pgserver

    try:
        pg = pgserver.start()
    except pgserver.Unavailable as exc:
        print(f"PostgreSQL skipped: {exc}")
        yield None, None
        return
    proxy, proxy_port = start_proxy(pg.port, rtt_ms)
    try:
        yield pg, proxy_port
    finally:
        proxy.kill()
        pg.stop()


def ledgers(pg, rtt_ms: float, proxy_port: int | None) -> list[tuple[str, Callable[[Path], str]]]:
    """(name, a new empty ledger's URL for a serve whose home is the path)."""
    import pgserver

    def postgres(port: int) -> Callable[[Path], str]:  # a database of its own, reached at that port
        return lambda _home: pgserver.create_database(pg.url())[1].replace(f":{pg.port}/", f":{port}/")

    found: list[tuple[str, Callable[[Path], str]]] = [("SQLite", lambda home: f"sqlite:///{home}/ledger.db")]
    if pg is not None:
        found.append(("PostgreSQL here", postgres(pg.port)))
        if proxy_port is not None:
            found.append((f"PostgreSQL {rtt_ms:g} ms away", postgres(proxy_port)))
    return found


def rows_written(url: str) -> int:
    from sqlalchemy import create_engine, text

    from routecli.store.engine import to_url

    engine = create_engine(to_url(url))
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM attempts WHERE source = 'serve'")).scalar_one()
    finally:
        engine.dispose()


def report(level: int, latency: float, steal: str, direct: bench.Route, serves: list[bench.Route]) -> None:
    print(f"  concurrency {level}, upstream {latency * 1000:.0f} ms; steal: {steal}")
    for serve in serves:
        keys = [key for key in direct.times if key in serve.times]
        paired = [serve.times[key] - direct.times[key] for key in keys]
        print(f"    {serve.name:<40} request by request p50 {bench.pct(paired, .5):+8.2f} ms  "
              f"p99 {bench.pct(paired, .99):+8.2f} ms  serve's CPU {serve.cpu_seconds * 1000 / serve.sent:.2f} "
              f"ms a request", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rtt-ms", type=float, default=2.0, help="round trip to the far PostgreSQL")
    parser.add_argument("--levels", default="64:0.5", help="concurrency:latency pairs")
    parser.add_argument("--requests", type=int, default=640)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--budgets", default="off,on", help="off, on or both (off,on)")
    args = parser.parse_args()
    import fakevendor

    root, vendor = fakevendor.start_server(key=bench.KEY)
    started: list[tuple[subprocess.Popen, str, str]] = []
    try:
        with postgres(args.rtt_ms) as (pg, proxy_port), tempfile.TemporaryDirectory() as tmp:
            serves: list[bench.Route] = []
            written: dict[str, str] = {}
            for name, new_ledger in ledgers(pg, args.rtt_ms, proxy_port):
                for budget in args.budgets.split(","):
                    home = Path(tmp) / f"{len(started)}"
                    home.mkdir()
                    db = new_ledger(home)
                    process, serve_url, _ = bench.start_serve(root, home, "auto", more_config=BUDGET if budget == "on"
                                                              else "", env={"ROUTECLI_DB": db})
                    started.append((process, serve_url, ""))
                    label = f"{name}, budget {budget}"
                    written[label] = db
                    serves.append(bench.Route(label, serve_url + "/v1/chat/completions", {}, {"model": "auto"},
                                              process.pid, 260))
            run_levels(args, root, serves)
            for process, _, _ in started:
                process.terminate()
                process.wait(timeout=30)
            for serve in serves:
                print(f"    {serve.name}: {rows_written(written[serve.name])} ledger rows for {serve.sent} requests "
                      "(each client's first request included)")
    finally:
        for process, _, _ in started:
            if process.poll() is None:
                process.kill()
        fakevendor.stop_server(vendor)


def run_levels(args: argparse.Namespace, root: str, serves: list[bench.Route]) -> None:
    for pair in args.levels.split(","):
        level, latency = int(pair.split(":")[0]), float(pair.split(":")[1])
        direct = bench.Route("direct", root + "/v1/chat/completions", {"authorization": f"Bearer {bench.KEY}"},
                             {"model": "gpt-5.4-nano"}, None, 260)
        for serve in serves:
            serve.times.clear()
            serve.cpu_seconds, serve.sent = 0.0, 0
        before = bench.cpu_ticks()
        with asyncio.Runner() as runner:
            runner.run(bench.run_level([direct, *serves], level, latency, args.requests, args.rounds, 0.2, "lean"))
        report(level, latency, bench.stolen(before, bench.cpu_ticks()), direct, serves)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == PROXY:
        asyncio.run(_proxy(sys.argv[2], float(sys.argv[3]) / 1000))
    else:
        os.environ.pop("ROUTECLI_DB", None)
        main()
