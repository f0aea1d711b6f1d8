"""API keys: `--api-key` > the provider's environment variable > keys.toml (mode 0600).

Keys live only in memory and in keys.toml; nothing here ever logs or records one.
"""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from routecli.config import Config, ProviderConfig, keys_path
from routecli.errors import ConfigError, MissingKeyError


def read_keys_file(path: Path | None = None) -> dict[str, str]:
    path = path or keys_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        # never echo the file's content: it holds secrets
        raise ConfigError(f"Cannot read {path}; fix or delete it and run `routecli keys set NAME`") from None
    return {name: value for name, value in data.items() if isinstance(value, str) and value}


def write_keys_file(keys: dict[str, str], path: Path | None = None) -> Path:
    import tomli_w

    from routecli.config_edit import write_atomically

    path = path or keys_path()
    write_atomically(path, tomli_w.dumps(dict(sorted(keys.items()))), mode=stat.S_IRUSR | stat.S_IWUSR)
    return path


LOCAL_INSTALL = 'pip install "routecli[local]"'


def local_runtime_installed() -> bool:
    """Whether an in-process (llamacpp) provider can run: found without importing llama.cpp."""
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def missing_key_message(provider: ProviderConfig) -> str:
    if provider.kind == "llamacpp":
        return f"{provider.name} runs a model in-process and needs the local extra: {LOCAL_INSTALL}"
    fixes = f"set {provider.api_key_env} or run `routecli keys set {provider.name}`"
    return f"No API key for {provider.name}: {fixes}"


@dataclass
class KeyRing:
    """Where each provider's key comes from, resolved lazily so an unused file is never read."""

    config: Config
    cli_key: str | None = None  # --api-key, only ever sent to cli_provider
    cli_provider: str | None = None
    _file: dict[str, str] | None = field(default=None, repr=False)

    def _from_file(self, name: str) -> str | None:
        if self._file is None:
            self._file = read_keys_file()
        return self._file.get(name)

    def get(self, name: str) -> str | None:
        provider = self.config.provider(name)
        if provider.api_key_env is None:
            return None  # a local server: no key needed
        if self.cli_key and self.cli_provider == name:
            return self.cli_key
        return os.environ.get(provider.api_key_env) or self._from_file(name)

    def has(self, name: str) -> bool:
        """Whether the provider can be called: it has its key, needs none, or (llamacpp) is installed."""
        provider = self.config.provider(name)
        if provider.kind == "llamacpp":
            return local_runtime_installed()
        return provider.api_key_env is None or self.get(name) is not None

    def require(self, name: str) -> str | None:
        key = self.get(name)
        provider = self.config.provider(name)
        if key is None and provider.api_key_env is not None:
            raise MissingKeyError(missing_key_message(provider))
        return key

    def secrets(self) -> list[str]:
        """Every key this process could send: redacted from anything it prints or stores."""
        names = [n for n, p in self.config.providers.items() if p.api_key_env]
        return [k for k in (self.get(n) for n in names) if k]

    def source(self, name: str) -> str:
        provider = self.config.provider(name)
        if provider.api_key_env is None:
            return "not needed"
        if self.cli_key and self.cli_provider == name:
            return "--api-key"
        if os.environ.get(provider.api_key_env):
            return f"${provider.api_key_env}"
        return "keys file" if self._from_file(name) else "missing"
