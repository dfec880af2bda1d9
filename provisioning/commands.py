"""``balans provision …``: the installer's tool — the gateway's identity and its enrolment with the cloud."""

from __future__ import annotations

from pathlib import Path

import click

from edge.config import ConfigError, load_config
from provisioning.enrolment import EnrolmentFailed, enrol, rotate_key


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
    try:
        answer = rotate_key(load_config(Path(config_path)))
    except (ConfigError, EnrolmentFailed) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"key of {answer['gateway']} rotated")
