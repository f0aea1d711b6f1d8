"""`routecli serve`: the OpenAI-compatible routing endpoint, and the member keys it accepts."""

from __future__ import annotations

import ipaddress
from typing import Optional

import typer

serve_app = typer.Typer(help="An OpenAI-compatible endpoint that routes and records every request.",
                        invoke_without_command=True, no_args_is_help=False)


@serve_app.callback()
def serve(
    ctx: typer.Context,
    host: Optional[str] = typer.Option(None, "--host", help="Address to bind (default serve.host: 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, "--port", "-p", help="Port (default serve.port: 8787; 0 picks one)."),
    db: Optional[str] = typer.Option(None, "--db", envvar="ROUTECLI_DB", help="Ledger path or URL."),
    loop: str = typer.Option("auto", "--loop", envvar="ROUTECLI_LOOP",
                             help="Event loop: auto (uvloop when installed), uvloop or asyncio."),
) -> None:
    """Serve POST /v1/chat/completions (model: auto | tier:NAME | provider:model), GET /v1/models, GET /health."""
    if ctx.invoked_subcommand is not None:
        return
    from routecli.config import db_location, load_config
    from routecli.keys import KeyRing
    from routecli.serve.run import run_server

    config = load_config()
    settings = config.guards.serve
    host = host or settings.host
    _refuse_open_without_keys(host, bool(settings.members))
    run_server(config, KeyRing(config), db_location(db), host, settings.port if port is None else port, loop=loop)


@serve_app.command("add-key")
def add_key(name: str = typer.Argument(..., help="Who the key is for; recorded as the caller of each request.")) -> None:
    """Make a bearer key for a team member: its hash goes in the config, the key is printed once."""
    import secrets

    from routecli.config_edit import set_value
    from routecli.serve.api import key_digest

    key = "rk-" + secrets.token_urlsafe(32)
    path = set_value(f"serve.members.{name}", key_digest(key))
    typer.echo(key)
    from routecli.cli.output import note

    note(f"key for {name} added to {path} (only its hash is kept: copy the key now)")


def _refuse_open_without_keys(host: str, has_keys: bool) -> None:
    from routecli.errors import UsageError

    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and not has_keys:
        raise UsageError(f"Binding {host} without member keys would let anyone who can reach it spend your API "
                         "budget: add keys with `routecli serve add-key NAME`, or bind 127.0.0.1")
