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


def _named(orgs) -> str:
    return ", ".join(f"{org.id} «{org.name}»" for org in orgs)


def find_site(db: Session, code: str, org_ref: str = "") -> Site:
    """The site ``code`` — of the organisation ``org_ref`` when given. A site's code is unique only within its
    organisation: when two have it and no ``--org`` says which, the command is refused, never guessed."""
    query = select(Site).where(Site.code == code).order_by(Site.org_id)
    org = find_org(db, org_ref) if org_ref else None
    if org is not None:
        query = query.where(Site.org_id == org.id)
    sites = db.scalars(query).all()
    if not sites:
        raise click.ClickException(f"site {code!r} does not exist" + (f" in {org.name}" if org else ""))
    if len(sites) > 1:
        owners = db.scalars(select(Organisation).where(Organisation.id.in_([s.org_id for s in sites]))
                            .order_by(Organisation.id))
        raise click.ClickException(f"site {code!r} exists in {len(sites)} organisations: {_named(owners)}; "
                                   "say which with --org ID")
    return sites[0]


def find_org(db: Session, ref: str) -> Organisation:
    """The organisation with id ``ref`` or, failing that, the exact name ``ref``; a name two organisations
    share is refused with their ids, never guessed."""
    org = db.get(Organisation, int(ref)) if ref.isdigit() else None
    if org is not None:
        return org
    named = db.scalars(select(Organisation).where(Organisation.name == ref).order_by(Organisation.id)).all()
    if not named:
        raise click.ClickException(f"organisation {ref!r} does not exist (give its id or exact name)")
    if len(named) > 1:
        raise click.ClickException(f"{len(named)} organisations are named {ref!r}: {_named(named)}; "
                                   "give --org ID")
    return named[0]


def site_org_option(command: click.Command) -> click.Command:
    """``--org`` beside ``--site``: needed only when the site's code is used by more than one organisation."""
    return click.option("--org", "org_ref", default="", help="organisation id or exact name (needed when two "
                        "organisations have a site with this code)")(command)


def find_gateway(db: Session, code: str) -> Gateway:
    # A gateway's code is unique across organisations (the schema says so), so there is nothing to guess.
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


def may(command_name: str, action: Action) -> None:
    """Refuse ``action`` when the command line's role may not perform it (a command doing more than its mark,
    e.g. ``bill --issue``, asks again for the extra action)."""
    if not allowed(COMMAND_LINE_ROLE, action):
        raise click.ClickException(f"{command_name}: {action.value} is for {', '.join(roles_for(action))}")


def performs(action: Action):
    """Mark a command with the action it performs and refuse it when the command line's role may not."""

    def decorate(command: click.Command) -> click.Command:
        callback = command.callback

        @functools.wraps(callback)
        def checked(*args, **kwargs):
            may(command.name, action)
            return callback(*args, **kwargs)

        command.callback = checked
        command.balans_action = action
        return command

    return decorate
