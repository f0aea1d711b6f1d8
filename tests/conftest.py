"""Shared fixtures. Every test gets its own ROUTECLI_HOME and sees no real API keys."""

from __future__ import annotations

import os

import pytest

KEY_VARS = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "OPENROUTER_API_KEY",
    "GROQ_API_KEY",
    "TOGETHER_API_KEY",
    "DEEPSEEK_API_KEY",
    "MISTRAL_API_KEY",
)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """A fresh app dir (config, keys, database) per test; no real keys, no colour, and, like a
    machine without `routecli[local]`, no local model (tests/test_local_tier.py asks for it)."""
    home = tmp_path / "routecli-home"
    home.mkdir()
    monkeypatch.setenv("ROUTECLI_HOME", str(home))
    for var in list(os.environ):
        if var.startswith("ROUTECLI_") and var != "ROUTECLI_HOME":
            monkeypatch.delenv(var)
    for var in KEY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setattr("routecli.keys.local_runtime_installed", lambda: False)
    return home


VENDOR_KEY = "fake-vendor-key-0123456789"


@pytest.fixture(scope="session")
def vendor_root():
    """tests/fakevendor.py running as a real server process on 127.0.0.1 for the whole session."""
    import fakevendor

    with fakevendor.serve(key=VENDOR_KEY) as root:
        yield root


@pytest.fixture
def vendor(vendor_root, isolated_home, monkeypatch):
    """A config whose openai, anthropic and gemini providers are the fake vendor, keys set."""
    import fakevendor

    fakevendor.reset(vendor_root)
    config = isolated_home / "config.toml"
    config.write_text(
        # the remote tiers only, also for the routecli processes some tests start
        '[routing]\ntier_order = ["cheap", "standard", "premium"]\n\n'
        + "\n".join(
            f'[providers.{name}]\nbase_url = "{vendor_root}{prefix}"\npricing_provider = "{prices}"\n'
            for name, prefix, prices in (
                ("openai", "/v1", "openai"),
                ("anthropic", "/v1", "anthropic"),
                ("gemini", "/v1beta", "google"),
            )
        )
    )
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.setenv(var, VENDOR_KEY)
    return vendor_root


@pytest.fixture
def store(isolated_home):
    """The test's ledger, open (a test file may define its own, filled one)."""
    from routecli.config import db_location
    from routecli.store import open_store

    with open_store(db_location()) as opened:
        yield opened


def ledger_rows():
    """Every attempt in the test's ledger, oldest first."""
    from sqlmodel import Session, select

    from routecli.config import db_location
    from routecli.store import Attempt, open_store

    store = open_store(db_location())
    try:
        with Session(store.engine) as session:
            return list(session.exec(select(Attempt).order_by(Attempt.id)))
    finally:
        store.close()
