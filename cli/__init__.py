"""The ``banditkit`` command: thin click shells over the Python API.

This package and ``server.py`` are the only places that compose all packages;
no library package imports it. Each subcommand family is one module here,
imported only when one of its commands runs, so that the learner process
(``banditkit serve-learner``) loads neither OpenCV nor the simulator.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from typing import Any

import click

from banditkit import __version__

__all__ = ["main"]

#: Subcommand name -> ``module:attribute`` of its click command.
_SUBCOMMANDS = {
    "artwork": "cli.artwork:artwork",
    "demo": "cli.demo:demo",
    "evaluate": "cli.evaluate:evaluate",
    "keys": "cli.keys:keys",
    "logs": "cli.logs:logs",
    "serve": "cli.serve:serve",
    "serve-learner": "cli.serve:serve_learner",
    "simulate": "cli.evaluate:simulate",
}


class _LazyGroup(click.Group):
    """A click group that imports a subcommand's module when it is first needed."""

    def __init__(self, *args: Any, subcommands: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._subcommands = dict(subcommands)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._subcommands})

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand; a database it cannot reach is one line, not a traceback."""
        try:
            return super().invoke(ctx)
        except Exception as error:
            psycopg = sys.modules.get("psycopg")  # imported only by a --database-url command
            if psycopg is None or not isinstance(error, psycopg.OperationalError):
                raise
            reason = " ".join(str(error).split())
            raise click.ClickException(f"cannot use the database of --database-url: "
                                       f"{reason}") from None

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._subcommands and cmd_name not in self.commands:
            module_name, attribute = self._subcommands[cmd_name].split(":")
            self.add_command(getattr(importlib.import_module(module_name), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, subcommands=_SUBCOMMANDS)
@click.version_option(__version__, prog_name="banditkit")
def main() -> None:
    """banditkit: personalized artwork and homepage rows with contextual bandits."""
