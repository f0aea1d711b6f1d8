import os
import stat

import pytest

from routecli.config import keys_path, load_config
from routecli.errors import MissingKeyError
from routecli.keys import KeyRing, read_keys_file, write_keys_file


def test_keys_file_is_private_and_read_back(isolated_home):
    path = write_keys_file({"openai": "sk-file"})
    assert path == keys_path()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert read_keys_file() == {"openai": "sk-file"}


def test_precedence_flag_then_env_then_file(monkeypatch):
    write_keys_file({"openai": "sk-file", "anthropic": "ak-file"})
    config = load_config()
    ring = KeyRing(config)
    assert ring.get("openai") == "sk-file" and ring.source("openai") == "keys file"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    assert ring.get("openai") == "sk-env" and ring.source("openai") == "$OPENAI_API_KEY"
    flagged = KeyRing(config, cli_key="sk-flag", cli_provider="openai")
    assert flagged.get("openai") == "sk-flag"
    assert flagged.get("anthropic") == "ak-file"  # the flag's key never goes to another provider
    assert set(flagged.secrets()) >= {"sk-flag", "ak-file"}


def test_missing_key_names_both_fixes():
    ring = KeyRing(load_config())
    assert not ring.has("anthropic")
    with pytest.raises(MissingKeyError) as info:
        ring.require("anthropic")
    assert "ANTHROPIC_API_KEY" in str(info.value)
    assert "routecli keys set anthropic" in str(info.value)


def test_local_providers_need_no_key():
    ring = KeyRing(load_config())
    assert ring.has("ollama") and ring.require("ollama") is None
    assert ring.source("ollama") == "not needed"


def test_unreadable_keys_file_does_not_echo_its_content(isolated_home):
    keys_path().write_text('openai = "sk-secret-value\n')  # broken TOML
    with pytest.raises(Exception) as info:
        read_keys_file()
    assert "sk-secret-value" not in str(info.value)
