"""``balans cloud``: the cloud's commands with an app built from the BALANS_* settings."""

from __future__ import annotations

import click
from flask.cli import FlaskGroup

from cloud import create_app
from cloud.cli.commands import COMMANDS, GROUPS


def cloud_group() -> click.Group:
    """``balans cloud``: the same commands as ``flask --app cloud``, with an app built from BALANS_* settings."""
    group = FlaskGroup(name="cloud", create_app=create_app, add_default_commands=False, add_version_option=False,
                       load_dotenv=False, set_debug_flag=False,
                       help="The cloud: database, organisations, users, billing, server.")
    for command in [*GROUPS, *COMMANDS]:
        group.add_command(command)
    return group
