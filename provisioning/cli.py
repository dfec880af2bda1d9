"""The ``balans`` command: one click group over the library — sim, edge, cloud, provision, demo."""

from __future__ import annotations

import importlib
import sys

import click

# Subcommands are imported when used: the gateway daemon on a Pi should not load Flask and SQLAlchemy.
LAZY = {
    "sim": ("edge.cli", "sim"),
    "edge": ("edge.cli", "edge_group"),
    "cloud": ("cloud.cli.group", "cloud_group"),
    "provision": ("provisioning.commands", "provision"),
    "demo": ("provisioning.demo", "demo_command"),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY:
            module, attribute = LAZY[name]
            found = getattr(importlib.import_module(module), attribute)
            return found() if attribute == "cloud_group" else found
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup)
def main():
    """Balans — metering, micro-balances and billing for small energy networks."""



if __name__ == "__main__":
    sys.exit(main())
