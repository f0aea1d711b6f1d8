"""`routecli config ...` and `routecli keys ...`: thin wrappers over config_edit and keys."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from routecli.errors import ConfigError, UsageError

config_app = typer.Typer(help="Show, create and edit the config file.", no_args_is_help=True)
keys_app = typer.Typer(help="Store API keys in keys.toml (mode 0600).", no_args_is_help=True)


@config_app.command("init")
def config_init(force: bool = typer.Option(False, "--force", help="Overwrite an existing file.")) -> None:
    """Write the commented default config file."""
    from routecli.cli.output import note
    from routecli.config_edit import init_config

    path = init_config(force=force)
    note(f"wrote {path}")


@config_app.command("path")
def config_path_cmd() -> None:
    """Print where the config file is (or would be)."""
    from routecli.config import config_path

    typer.echo(str(config_path()))


@config_app.command("show")
def config_show(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of TOML.")) -> None:
    """Print the effective config: the defaults with your file merged over them."""
    import json

    from routecli.config import config_path, merged, read_user_file
    from routecli.config_edit import render
    from routecli.config_schema import build_config

    raw = merged(read_user_file())
    build_config(raw)  # show only a config routecli would accept
    if as_json:
        typer.echo(json.dumps(raw, indent=2))
    else:
        source = config_path()
        typer.echo(f"# effective config; your file: {source if source.exists() else 'none (defaults)'}")
        typer.echo(render(raw))


@config_app.command("set")
def config_set(
    key: str = typer.Argument(..., help="Dotted key, e.g. routing.baseline or providers.openai.base_url."),
    value: str = typer.Argument(..., help="The new value; lists are comma-separated."),
) -> None:
    """Set one value, refusing anything invalid (the allowed values are listed)."""
    from routecli.cli.output import note
    from routecli.config_edit import set_value

    path = set_value(key, value)
    note(f"set {key} in {path}")


def _known_provider(name: str) -> None:
    from routecli.config import load_config

    load_config().provider(name)  # raises, listing the known providers


@keys_app.command("set")
def keys_set(
    name: str = typer.Argument(..., help="Provider name from the config, e.g. openai."),
    value: Optional[str] = typer.Option(None, "--value", help="The key (else prompted, or read from stdin)."),
) -> None:
    """Save a provider's API key to keys.toml (readable by you only)."""
    from routecli.cli.output import note
    from routecli.keys import read_keys_file, write_keys_file

    _known_provider(name)
    if value is None:
        if sys.stdin.isatty():
            value = typer.prompt(f"API key for {name}", hide_input=True)
        else:
            value = sys.stdin.readline()
    value = (value or "").strip()
    if not value or any(ch.isspace() for ch in value):
        raise UsageError("An API key cannot be empty or contain spaces; paste it again")
    keys = read_keys_file()
    keys[name] = value
    path = write_keys_file(keys)
    note(f"saved the key for {name} in {path}")


@keys_app.command("list")
def keys_list() -> None:
    """Show which providers have a key and where it comes from (never the key itself)."""
    from routecli.config import load_config
    from routecli.keys import KeyRing

    config = load_config()
    ring = KeyRing(config)
    for name in sorted(config.providers):
        typer.echo(f"{name}\t{ring.source(name)}")


@keys_app.command("remove")
def keys_remove(name: str = typer.Argument(..., help="Provider name.")) -> None:
    """Delete a saved key."""
    from routecli.cli.output import note
    from routecli.keys import read_keys_file, write_keys_file

    keys = read_keys_file()
    if name not in keys:
        raise ConfigError(f"No saved key for {name!r}; `routecli keys list` shows what is saved")
    del keys[name]
    write_keys_file(keys)
    note(f"removed the key for {name}")


@keys_app.command("path")
def keys_path_cmd() -> None:
    """Print where keys.toml is."""
    from routecli.config import keys_path

    typer.echo(str(keys_path()))
