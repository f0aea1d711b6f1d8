"""The Typer app and its single error boundary.

Command modules import only typer and the standard library at module level; everything
heavy (httpx, sqlmodel, genai-prices, rich) is imported inside the command that needs it,
so `routecli --help` stays fast (see benchmarks/startup.py).
"""

from __future__ import annotations

import sys

import typer
from typer.core import TyperGroup

from routecli.errors import RoutecliError


class _ErrorBoundary(TyperGroup):
    """The one place a RoutecliError becomes `error: <message>` on stderr and an exit code.

    It sits in the root group's invoke, so every command (and CliRunner in tests) gets it.
    """

    def invoke(self, ctx: typer.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except RoutecliError as exc:
            from routecli.cli.output import error

            error(str(exc))
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    name="routecli",
    cls=_ErrorBoundary,
    help="Send each prompt to the cheapest model that will answer it well, and keep an honest ledger.",
    rich_markup_mode=None,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

from routecli.cli import ask as _ask  # noqa: E402  (registers commands on app)
from routecli.cli import batch_cmds as _batch_cmds  # noqa: E402
from routecli.cli import guard_cmds as _guard_cmds  # noqa: E402
from routecli.cli import ledger as _ledger  # noqa: E402
from routecli.cli import route_cmds as _route_cmds  # noqa: E402
from routecli.cli import routing_cmds as _routing_cmds  # noqa: E402
from routecli.cli import serve_cmds as _serve_cmds  # noqa: E402
from routecli.cli import settings as _settings  # noqa: E402
# --help lists commands in the order they register: the dashboard, feedback and A/B tests after the everyday ones
from routecli.cli import dashboard_cmds as _dashboard_cmds  # noqa: E402
from routecli.cli import ab_cmds as _ab_cmds  # noqa: E402
from routecli.cli import alerts_cmds as _alerts_cmds  # noqa: E402

app.add_typer(_settings.config_app, name="config")
app.add_typer(_settings.keys_app, name="keys")
app.add_typer(_serve_cmds.serve_app, name="serve")
app.add_typer(_guard_cmds.cache_app, name="cache")
app.add_typer(_ab_cmds.ab_app, name="ab")
app.add_typer(_alerts_cmds.alerts_app, name="alerts")

from routecli.cli.db_cmds import db_app as _db_app  # noqa: E402

app.add_typer(_db_app, name="db")


def main() -> None:
    try:
        app()
    except BrokenPipeError:
        # `routecli export | head`: the reader left. Point stdout at devnull so the
        # interpreter's final flush does not raise again (Python docs, SIGPIPE note).
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
