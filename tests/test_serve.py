"""`routecli serve` end to end: a real server process, the official openai SDK, the fake vendor upstream."""

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

import fakevendor
from conftest import VENDOR_KEY, ledger_rows

openai = pytest.importorskip("openai")


@pytest.fixture
def serve(vendor, isolated_home):
    """Start `routecli serve --port 0` on the vendor config; yields a function returning its base URL."""
    started = []

    def start(extra_config: str = "", args: tuple[str, ...] = ()) -> str:
        if extra_config:
            path = isolated_home / "config.toml"
            path.write_text(path.read_text() + "\n" + extra_config)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen([sys.executable, "-m", "routecli", "serve", "--port", "0", *args], env=env,
                                   stderr=subprocess.PIPE, text=True)
        started.append(process)
        line = process.stderr.readline()
        assert "listening on" in line, line + process.stderr.read()
        lines.append(line)
        return line.split("listening on ", 1)[1].split()[0]

    lines: list[str] = []
    start.processes, start.lines = started, lines
    yield start
    for process in started:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        assert process.returncode == 0


def rows_soon(count):
    """The ledger once it holds `count` rows: without a budget serve answers first and commits
    the row right after, so a test that reads the file at once may be a moment early."""
    import time

    deadline = time.monotonic() + 5
    while len(rows := ledger_rows()) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return rows


def client(url, key="unused"):
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=10)


def test_chat_through_the_sdk_routes_answers_and_lands_in_the_ledger(serve, vendor):
    url = serve()
    raw = client(url).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}])
    reply = raw.parse()
    assert reply.choices[0].message.content == "echo: hi there"
    assert reply.model.count(":") == 1 and reply.usage.prompt_tokens > 0
    assert raw.headers["x-routecli-tier"] in ("cheap", "standard", "premium")
    assert raw.headers["x-routecli-model"] == reply.model
    assert float(raw.headers["x-routecli-cost"]) > 0
    [row] = rows_soon(1)
    assert (row.source, row.status, row.id) == ("serve", "ok", raw.headers["x-routecli-request-id"])
    assert f"{row.provider}:{row.model}" == reply.model


def test_serve_runs_on_uvloop_when_installed_and_on_asyncio_when_asked(serve):
    pytest.importorskip("uvloop")  # a dependency wherever it builds (not on Windows)
    for args, loop in ((("--loop", "auto"), "uvloop"), (("--loop", "asyncio"), "asyncio")):
        url = serve(args=args)
        assert f"; {loop} event loop)" in serve.lines[-1]
        sdk = client(url)
        reply = sdk.chat.completions.create(model="auto", messages=[{"role": "user", "content": f"hello {loop}"}])
        assert reply.choices[0].message.content == f"echo: hello {loop}"
        stream = sdk.chat.completions.create(model="auto", stream=True,
                                             messages=[{"role": "user", "content": f"stream {loop}"}])
        assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices) == f"echo: stream {loop}"


def test_an_event_loop_that_is_unknown_or_not_installed_is_refused_with_the_fix(monkeypatch):
    import asyncio

    from routecli.errors import UsageError
    from routecli.loops import event_loop

    with pytest.raises(UsageError, match=r"unknown event loop 'trio' \(--loop, ROUTECLI_LOOP\): use one of auto, "):
        event_loop("trio")
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if it were not installed: importing it fails
    with pytest.raises(UsageError, match=r"uvloop is not installed: pip install uvloop, or use asyncio's own loop "
                                         r"\(--loop asyncio, ROUTECLI_LOOP=asyncio\)"):
        event_loop("uvloop")
    assert event_loop("auto") == (asyncio.new_event_loop, "asyncio")


def test_a_repeated_temperature_0_request_is_answered_from_the_cache(serve, vendor):
    """The cache is filled once the first answer is on its way; the repeat is a hit, at no cost."""
    url = serve()
    sdk = client(url)
    ask = {"model": "openai:gpt-5.4-nano", "temperature": 0, "messages": [{"role": "user", "content": "cache me"}]}
    first = sdk.chat.completions.with_raw_response.create(**ask)
    second = sdk.chat.completions.with_raw_response.create(**ask)
    assert first.headers["x-routecli-cache"] == "miss" and second.headers["x-routecli-cache"] == "exact"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content == "echo: cache me"
    assert float(second.headers["x-routecli-cost"]) == 0 < float(first.headers["x-routecli-cost"])
    assert len(rows_soon(2)) == 2


def test_rows_still_queued_at_shutdown_are_written(serve):
    url = serve()
    sdk = client(url)
    for text in ("one", "two", "three", "four", "five"):
        sdk.chat.completions.create(model="openai:gpt-5.4-nano", messages=[{"role": "user", "content": text}])
    process = serve.processes[0]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    assert sorted(row.prompt for row in ledger_rows()) == ["five", "four", "one", "three", "two"]


def in_process(body):
    """Run `await body(relay)` against a Relay on the test's config and ledger, then close it; body's result."""
    import asyncio

    from routecli.config import db_location, load_config
    from routecli.keys import KeyRing
    from routecli.serve.relay import Relay
    from routecli.store import open_store

    config = load_config()
    store = open_store(db_location())

    async def main():
        relay = Relay(config, KeyRing(config), store)
        relay.start()
        try:
            return await body(relay)
        finally:
            await relay.close()

    try:
        return asyncio.run(main())
    finally:
        store.close()


def prompt(text, **fields):
    from routecli.domain import Message, Request

    return Request((Message("user", text),), **fields)


def ask(relay, request):
    return relay.answer(request, relay.decide(request), caller=None)


@pytest.mark.parametrize("budget", [False, True])
def test_the_answer_does_not_wait_for_its_row_and_a_budget_hold_lasts_until_the_row_is_in(vendor, isolated_home,
                                                                                         budget):
    """In process, with no await between the answer and the look: the row is still queued (close()
    writes it); under a budget the call's hold is still there, and goes in the row's own commit."""
    from routecli.config import db_location
    from routecli.store import open_store

    if budget:
        path = isolated_home / "config.toml"
        path.write_text(path.read_text() + "\n[budgets]\ndaily = 100.0\n")

    def holds():
        with open_store(db_location()).read() as conn:
            return conn.exec_driver_sql("SELECT COUNT(*), COALESCE(SUM(micros), 0) FROM budget_holds").one()

    async def body(relay):
        outcome = await ask(relay, prompt("hello", model="openai:gpt-5.4-nano"))
        return outcome, len(ledger_rows()), holds()

    outcome, at_answer, held = in_process(body)
    assert outcome.status == "ok" and at_answer == 0
    assert held[0] == (1 if budget else 0) and (held[1] > 0) == budget
    assert [row.id for row in ledger_rows()] == [outcome.attempt_id]
    assert tuple(holds()) == (0, 0)


def test_a_row_not_built_yet_is_built_and_committed_by_flush(vendor, isolated_home, monkeypatch):
    """Without a budget the row is built a moment after the answer (relay.LATER), off its path;
    flush(), which the analytics routes call before they read, does not wait for that moment."""
    from routecli.serve import relay as serve_relay

    async def body(relay):
        outcome = await ask(relay, prompt("hello", model="openai:gpt-5.4-nano"))
        waiting = len(relay._waiting)
        await relay.flush()
        return outcome, waiting, len(ledger_rows())

    monkeypatch.setattr(serve_relay, "LATER", 3600.0)  # the moment never comes here: only flush() builds the row
    outcome, waiting, flushed = in_process(body)
    assert waiting == 1 and flushed == 1
    assert [row.id for row in ledger_rows()] == [outcome.attempt_id]


def test_work_put_off_that_fails_is_reported_and_the_rest_still_runs(vendor, isolated_home, monkeypatch):
    import asyncio

    from routecli.serve import relay as serve_relay

    monkeypatch.setattr(serve_relay, "LATER", 3600.0)
    done, said = [], []

    async def body(relay):
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: said.append(context["message"]))
        relay._later(lambda: 1 / 0)
        relay._later(lambda: done.append("ran"))
        await relay.flush()

    in_process(body)
    assert done == ["ran"] and said == ["routecli serve: work after an answer failed"]


def test_the_request_side_of_the_assessment_is_ready_when_the_answer_arrives(vendor, isolated_home):
    """Worked out while the upstream model answers, so the answer only waits for its own side;
    the confidence is the same as assessing it all at once, in the answer and in its row."""
    from routecli.routing.assess import assess

    request, seen = prompt("What colour is the sky? [[delay=0.05]]"), []

    async def body(relay):
        judge = relay.policy.judge
        relay.policy.judge = lambda journey, outcome, asked=None: (seen.append(asked), judge(journey, outcome, asked))
        return await ask(relay, request)

    outcome = in_process(body)
    assert len(seen) == 1 and seen[0] is not None and "what colour is the sky" in seen[0].text
    alone = assess(request, outcome.reply, signals=dict(outcome.decision.verdict.signals))
    [row] = ledger_rows()
    assert outcome.confidence == alone.confidence == row.confidence and outcome.assessment_reasons == alone.reasons


def test_an_escalated_request_keeps_one_request_id_and_its_chain(vendor, isolated_home):
    """Serve draws the request's id while the first call waits; the escalation's row still
    follows the first one and shares its request id."""
    outcome = in_process(lambda relay: ask(relay, prompt("Explain step by step why the sky is blue")))
    first, second = sorted(ledger_rows(), key=lambda row: row.id)
    assert (first.step, second.step) == ("first", "escalation")
    assert first.request_id == second.request_id == first.id and second.parent_id == first.id
    assert outcome.attempt_id == second.id and any("escalated" in note for note in outcome.history)


def test_once_the_ledger_fails_no_upstream_call_is_made(vendor, isolated_home, capsys):
    """The answer that went out before its commit failed cannot carry the error: serve says it on
    stderr, and refuses every later request before paying for a call it could not record."""
    import asyncio

    import fakevendor
    from sqlalchemy import text

    from routecli.config import db_location, load_config
    from routecli.domain import Message, Request
    from routecli.errors import StoreError
    from routecli.keys import KeyRing
    from routecli.serve.relay import Relay
    from routecli.store import open_store

    config = load_config()
    store = open_store(db_location())
    with store.engine.begin() as conn:
        conn.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON attempts BEGIN SELECT RAISE(ABORT, 'disk full'); END"))
    request = Request((Message("user", "hello"),), model="openai:gpt-5.4-nano")

    async def main():
        relay = Relay(config, KeyRing(config), store)
        relay.start()
        first = await relay.answer(request, relay.decide(request), caller=None)
        with pytest.raises(StoreError):
            await relay.flush()  # the row built after the answer is committed, and fails
        fakevendor.reset(vendor)
        with pytest.raises(StoreError) as refused:
            await relay.answer(request, relay.decide(request), caller=None)
        with pytest.raises(StoreError):
            await relay.close()
        return first, refused.value

    try:
        first, refused = asyncio.run(main())
    finally:
        store.close()
    assert first.status == "ok" and fakevendor.requests_log(vendor) == []
    assert "disk full" in str(refused) and "restart" in str(refused) and "resume" not in str(refused)
    assert "routecli serve: Cannot write in the ledger" in capsys.readouterr().err


def test_streaming_through_the_sdk(serve):
    url = serve()
    chunks = list(client(url).chat.completions.create(
        model="openai:gpt-5.4-mini", messages=[{"role": "user", "content": "stream this please"}], stream=True,
        stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: stream this please"
    assert chunks[-1].usage.completion_tokens == 4
    [row] = rows_soon(1)
    assert (row.model, row.status, row.ttft_ms is not None) == ("gpt-5.4-mini", "ok", True)


def test_tier_and_model_force_the_route(serve):
    url = serve()
    sdk = client(url)
    assert sdk.chat.completions.create(model="tier:premium", messages=[{"role": "user", "content": "a"}]).model \
        == "anthropic:claude-opus-5"
    assert sdk.chat.completions.create(model="gemini:gemini-3.5-flash",
                                       messages=[{"role": "user", "content": "b"}]).model == "gemini:gemini-3.5-flash"
    assert [r.tier for r in rows_soon(2)][0] == "premium"


def test_errors_reach_the_sdk_as_its_own_exceptions_without_keys(serve, vendor):
    url = serve()
    sdk = client(url)
    with pytest.raises(openai.InternalServerError) as upstream:
        sdk.chat.completions.create(model="openai:gpt-5.4-nano", messages=[{"role": "user", "content": "x [[status=503]]"}])
    assert upstream.value.status_code == 502 and VENDOR_KEY not in str(upstream.value)
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(model="nosuch:model", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(model="auto", messages=[{"role": "assistant", "content": "no user"}])
    with pytest.raises(openai.NotFoundError):
        sdk.completions.create(model="auto", prompt="legacy endpoint")
    assert [(r.status, r.error_kind) for r in rows_soon(1)] == [("error", "server")]


def test_member_keys_gate_the_endpoint_and_name_the_caller(serve, vendor, isolated_home):
    from typer.testing import CliRunner

    from routecli.cli import app

    made = CliRunner().invoke(app, ["serve", "add-key", "alice"])
    assert made.exit_code == 0, made.output
    key = made.stdout.strip()
    assert key.startswith("rk-") and key not in (isolated_home / "config.toml").read_text()
    url = serve()
    fakevendor.reset(vendor)
    with pytest.raises(openai.AuthenticationError):
        client(url, "rk-wrong").chat.completions.create(model="auto", messages=[{"role": "user", "content": "x"}])
    assert fakevendor.requests_log(vendor) == []  # a bad key is never forwarded
    client(url, key).chat.completions.create(model="auto", messages=[{"role": "user", "content": "x"}])
    [row] = rows_soon(1)
    assert row.caller == "alice"


def test_models_health_size_limit_and_bad_json(serve):
    url = serve("[serve]\nmax_body_bytes = 2000\n")
    ids = [m.id for m in client(url).models.list()]
    assert ids[:4] == ["auto", "tier:cheap", "tier:standard", "tier:premium"] and "openai:gpt-5.4-nano" in ids
    with urllib.request.urlopen(url + "/health") as response:
        assert json.load(response)["status"] == "ok"
    for body, status in ((b"{" + b" " * 5000 + b"}", 413), (b"not json", 400)):
        request = urllib.request.Request(url + "/v1/chat/completions", data=body, method="POST",
                                         headers={"content-type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(request)
        assert failed.value.code == status
    assert ledger_rows() == []


def test_binding_beyond_loopback_needs_member_keys(vendor):
    from typer.testing import CliRunner

    from routecli.cli import app

    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "add-key" in result.stderr


def test_router_names_as_models(serve):
    url = serve()
    sdk = client(url)
    reply = sdk.chat.completions.create(model="router-rules-0.0", messages=[{"role": "user", "content": "hi"}])
    assert reply.model == "anthropic:claude-opus-5"
    assert "router-learned-0.5" in [m.id for m in sdk.models.list()]
    [row] = rows_soon(1)
    assert "router rules@0.0" in row.reasons


def get(url, path, key=None):
    request = urllib.request.Request(url + path, headers={"authorization": f"Bearer {key}"} if key else {})
    with urllib.request.urlopen(request) as response:
        return response.headers.get("content-type"), response.read().decode()


def test_analytics_over_http_behind_the_same_keys(serve, vendor, isolated_home):
    from typer.testing import CliRunner

    from routecli.cli import app

    key = CliRunner().invoke(app, ["serve", "add-key", "bob"]).stdout.strip()
    url = serve()
    sdk = client(url, key)
    for text in ("one", "two", "three"):
        sdk.chat.completions.create(model="openai:gpt-5.4-nano", messages=[{"role": "user", "content": text}])
    with pytest.raises(urllib.error.HTTPError) as denied:
        get(url, "/routecli/stats")
    assert denied.value.code == 401
    kind, body = get(url, "/routecli/stats?since=1h&by=model", key)
    stats = json.loads(body)
    assert stats["totals"]["requests"] == 3 and "openai:gpt-5.4-nano" in json.dumps(stats["by_model"])
    kind, body = get(url, "/routecli/export?format=csv&columns=id,model,caller", key)
    lines = body.strip().splitlines()
    assert kind.startswith("text/csv") and lines[0] == "id,model,caller" and len(lines) == 4
    assert all(line.endswith(",gpt-5.4-nano,bob") for line in lines[1:])
    kind, body = get(url, "/routecli/export?format=jsonl&where=caller=bob", key)
    assert len(body.splitlines()) == 3 and VENDOR_KEY not in body
    kind, body = get(url, "/routecli/report", key)
    assert kind.startswith("text/html") and "<svg" in body
    assert json.loads(get(url, "/routecli/health", key)[1])["models"]
    assert "limits" in json.loads(get(url, "/routecli/budget", key)[1])
    schema = json.loads(get(url, "/openapi.json", key)[1])
    for path in ("/v1/chat/completions", "/routecli/stats", "/routecli/export", "/routecli/report"):
        assert path in schema["paths"]
    with pytest.raises(urllib.error.HTTPError) as bad:
        get(url, "/routecli/export?format=xml", key)
    assert bad.value.code == 400
