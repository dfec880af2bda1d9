"""What every ``balans cloud`` command needs: the app, the records a command names, and the permission check.

The command line runs with the server's shell, so it acts as ``permissions.COMMAND_LINE_ROLE``; each command
still declares the action it performs (``@performs``), so the one permissions table covers it too.
"""

from __future__ import annotations

import functools
from datetime import date

import click
from flask import Flask, current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.clock import kyiv_today
from cloud.models import Gateway, Organisation, Site
from cloud.permissions import COMMAND_LINE_ROLE, Action, allowed, roles_for


def app() -> Flask:
    return current_app._get_current_object()


def find_site(db: Session, code: str) -> Site:
    site = db.scalar(select(Site).where(Site.code == code))
    if site is None:
        raise click.ClickException(f"site {code!r} does not exist")
    return site


def find_org(db: Session, ref: str) -> Organisation:
    org = db.get(Organisation, int(ref)) if ref.isdigit() else db.scalar(
        select(Organisation).where(Organisation.name == ref))
    if org is None:
        raise click.ClickException(f"organisation {ref!r} does not exist (give its id or exact name)")
    return org


def find_gateway(db: Session, code: str) -> Gateway:
    gateway = db.scalar(select(Gateway).where(Gateway.code == code))
    if gateway is None:
        raise click.ClickException(f"gateway {code!r} is not enrolled")
    return gateway


def day_option(text: str, option: str = "--date") -> date:
    """A YYYY-MM-DD option (today when empty), with an error that names the option."""
    try:
        return date.fromisoformat(text) if text else kyiv_today()
    except ValueError:
        raise click.ClickException(f"{option} {text!r} is not a date (YYYY-MM-DD)") from None


def performs(action: Action):
    """Mark a command with the action it performs and refuse it when the command line's role may not."""

    def decorate(command: click.Command) -> click.Command:
        callback = command.callback

        @functools.wraps(callback)
        def checked(*args, **kwargs):
            if not allowed(COMMAND_LINE_ROLE, action):
                raise click.ClickException(f"{command.name}: {action.value} is for {', '.join(roles_for(action))}")
            return callback(*args, **kwargs)

        command.callback = checked
        command.balans_action = action
        return command

    return decorate
