"""Writing the config file: `config init` and `config set`, with comments tomli-w cannot write."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from routecli.config import config_path, merged, read_user_file
from routecli.config_schema import SETTABLE, match_key
from routecli.errors import ConfigError


def render(data: dict[str, Any]) -> str:
    """TOML for data, each known section preceded by its comment."""
    import tomli_w

    from routecli.defaults import SECTION_COMMENTS

    chunks = ["# routecli configuration. `routecli config set KEY VALUE` edits it safely.\n"]
    for section, value in data.items():
        comment = SECTION_COMMENTS.get(section)
        if comment:
            chunks.append("\n".join(f"# {line}" if line else "#" for line in comment.splitlines()) + "\n")
        chunks.append(tomli_w.dumps({section: value}))
    return "\n".join(chunks)


def write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def init_config(path: Path | None = None, *, force: bool = False) -> Path:
    from routecli.defaults import DEFAULTS

    path = path or config_path()
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists; pass --force to overwrite it")
    write_atomically(path, render(DEFAULTS))
    return path


def split_key(key: str) -> list[str]:
    """Dotted parts, where a model ref (in models.* and prices.*) may itself hold dots and colons."""
    section, _, rest = key.partition(".")
    if section not in ("models", "prices") or not rest:
        return key.split(".")
    ref, _, last = rest.rpartition(".")
    fields = {p.split(".")[-1] for p in SETTABLE if p.startswith(f"{section}.<") and p.count(".") == 2}
    if not (ref and last in fields):
        ref, last = rest, ""
    return [section, ref.strip('"')] + ([last] if last else [])


def parse_value(kind: str, text: str, key: str) -> Any:
    text = text.strip()
    if kind == "list":
        if text.startswith("["):
            value = tomllib.loads(f"v = {text}")["v"]
        else:
            value = [item.strip() for item in text.split(",") if item.strip()]
        return value
    if kind == "price":
        numbers = [item.strip() for item in text.split(",")]
        if len(numbers) not in (2, 3):
            raise ConfigError(f"Config key {key}: give INPUT,OUTPUT[,CACHED_INPUT] in USD per 1M tokens, got {text!r}")
        names = ("input_mtok", "output_mtok", "cached_input_mtok")
        return {name: parse_value("float", number, f"{key}.{name}") for name, number in zip(names, numbers)}
    if kind == "floats":
        return [parse_value("float", item, key) for item in text.strip("[]").split(",") if item.strip()]
    if kind == "bool":
        if text.lower() not in ("true", "false"):
            raise ConfigError(f"Config key {key}: must be true or false, got {text!r}")
        return text.lower() == "true"
    if kind in ("int", "float"):
        try:
            return int(text) if kind == "int" else float(text)
        except ValueError:
            raise ConfigError(f"Config key {key}: must be a{'' if kind == 'int' else ' decimal'} number, got {text!r}") from None
    return text


def set_value(key: str, text: str, path: Path | None = None) -> Path:
    """Set one key in the user's config file, refusing any value the whole config would reject."""
    return set_values({key: text}, path)


def set_values(items: dict[str, str], path: Path | None = None) -> Path:
    """Set several keys at once (e.g. thresholds that must stay ordered), validated together."""
    from routecli.config_schema import build_config

    path = path or config_path()
    user = read_user_file(path)
    if not user:  # start from the full default file, as `config init` would
        user = merged({})
    for key, text in items.items():
        parts = split_key(key)
        pattern = match_key(parts)
        if pattern is None:
            raise ConfigError(f"Unknown config key {key!r}; settable keys: {', '.join(SETTABLE)}")
        value = parse_value(SETTABLE[pattern], text, key)
        if pattern == "providers.<name>.pricing_provider":
            _check_pricing_provider(value, key)
        node = user
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    build_config(merged(user), source=path)  # raises ConfigError naming the allowed values
    write_atomically(path, render(user))
    return path


def _check_pricing_provider(value: str, key: str) -> None:
    from genai_prices.data import providers

    known = sorted(provider.id for provider in providers)
    if value not in known:
        raise ConfigError(f"Config key {key}: {value!r} is not a genai-prices provider; use one of: {', '.join(known)}")
