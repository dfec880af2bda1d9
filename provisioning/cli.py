"""The ``balans`` command: one click group over the library — sim, edge, cloud, provision, demo."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import click

# Subcommands are imported when used: the gateway daemon on a Pi should not load Flask and SQLAlchemy.
LAZY = {
    "sim": ("edge.cli", "sim"),
    "edge": ("edge.cli", "edge_group"),
    "cloud": ("cloud.cli.group", "cloud_group"),
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


@click.group("provision")
def provision():
    """The installer's tool: gateway identity and enrolment."""


@provision.command("enroll")
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--token", required=True, help="one-time enrolment token from the org admin")
@click.option("--cloud", "cloud_url", default="", help="cloud URL (default: the one in the config)")
def enroll(config_path, token, cloud_url):
    """Send this gateway's public key and site topology to the cloud (creates the key if missing).

    Example: balans provision enroll --config /etc/balans/gateway.toml --cloud https://balans.example --token T
    """
    from edge.config import ConfigError, load_config
    from provisioning.enrolment import EnrolmentFailed, enrol

    try:
        config = load_config(Path(config_path))
        answer = enrol(config, token, cloud_url or None)
    except (ConfigError, EnrolmentFailed) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"enrolled {answer['gateway']} at site {config.site}")


@provision.command("rotate-key")
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False))
def rotate_key_cmd(config_path):
    """Give the gateway a new key, signed by the old one; the cloud keeps both for old batches.

    Example: balans provision rotate-key --config /etc/balans/gateway.toml
    """
    from edge.config import ConfigError, load_config
    from provisioning.enrolment import EnrolmentFailed, rotate_key

    try:
        answer = rotate_key(load_config(Path(config_path)))
    except (ConfigError, EnrolmentFailed) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"key of {answer['gateway']} rotated")


@click.command("demo")
@click.option("--scenario", "scenario_path", default="examples/seed-cottage-town.toml", show_default=True,
              type=click.Path(exists=True, dir_okay=False))
@click.option("--headless", is_flag=True, help="no web pages: run the month, print the result, exit")
@click.option("--json", "as_json", is_flag=True, help="print the result as one JSON document")
@click.option("--port", default=8000, show_default=True, help="the cloud's port (not headless)")
@click.option("--workdir", default="var/demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--poll-seconds", default=3600, show_default=True, help="simulated seconds between polls")
def demo(scenario_path, headless, as_json, port, workdir, poll_seconds):
    """The seed's cottage town end to end: simulated meters → gateway → cloud → invoices.

    Example: balans demo --headless --scenario examples/seed-cottage-town.toml --json
    """
    from provisioning.demo import dump, run_demo

    def echo(text="", end="\n"):
        click.echo(text, nl=False, err=True)
        click.echo(end, nl=False, err=True)

    document = run_demo(Path(scenario_path), Path(workdir), port, headless, poll_seconds, echo)
    if as_json:
        click.echo(dump(document))
    elif headless:
        billing = document["billing"]
        click.echo(f"{document['period']}: {billing['invoices']} invoices, {billing['distributed_uah']} UAH, "
                   f"cost recovery {billing['cost_recovery_pct']} %, break-even {billing['break_even_coefficient']}")


main.add_command(provision)
main.add_command(demo)

if __name__ == "__main__":
    sys.exit(main())
