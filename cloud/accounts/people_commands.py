"""``balans cloud users | invite-user | disable-user | enable-user | set-role | invite-codes | regenerate-code``:
the organisation's people and the residents' invitation codes, from the server's shell."""

from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import func, select

from cloud.accounts.invite_codes import ensure_invite_codes, regenerate_code
from cloud.accounts.people import PeopleError, invite, org_people, set_active, set_role
from cloud.cli.lookup import app as _app
from cloud.cli.lookup import find_org, find_site, performs, site_org_option
from cloud.db import session_scope
from cloud.models import Account, Organisation, User
from cloud.permissions import COMMAND_LINE_ROLE, Action

ACTOR = "cli"


def _the_org(db, ref: str) -> Organisation:
    """``--org`` when given; without it, the one organisation there is (two or more: say which)."""
    if ref:
        return find_org(db, ref)
    orgs = db.scalars(select(Organisation).order_by(Organisation.id).limit(2)).all()
    if len(orgs) != 1:
        raise click.ClickException("say which organisation with --org ID" if orgs else "no organisation yet")
    return orgs[0]


def _user(db, email: str) -> User:
    user = db.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))
    if user is None:
        raise click.ClickException(f"no user {email}")
    return user


def _public_url() -> str:
    return current_app.config.get("PUBLIC_URL") or "http://127.0.0.1:8000"


@performs(Action.SET_UP)
@click.command("users")
@click.option("--org", "org_ref", default="", help="organisation id or exact name (default: every one)")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def users(org_ref, as_json):
    """List the people who sign in, with role, state and last sign-in.  Example: balans cloud users --org 1"""
    with session_scope(_app()) as db:
        orgs = [find_org(db, org_ref)] if org_ref else db.scalars(select(Organisation).order_by(Organisation.id))
        rows = [(org, person) for org in orgs for person in org_people(db, org.id)]
        if as_json:
            click.echo(json.dumps([{"org": org.id, "email": p.user.email, "name": p.user.name, "role": p.user.role,
                                    "active": p.user.active, "last_sign_in": p.last_sign_in.isoformat() + "Z"
                                    if p.last_sign_in else None} for org, p in rows], ensure_ascii=False))
            return
        for org, p in rows:
            seen = p.last_sign_in.strftime("%Y-%m-%d %H:%M") + " UTC" if p.last_sign_in else "never"
            click.echo(f"{org.id}\t{p.user.email}\t{p.user.role}\t{'active' if p.user.active else 'disabled'}"
                       f"\t{seen}\t{p.user.name}")


@performs(Action.SET_UP)
@click.command("invite-user")
@click.option("--email", required=True)
@click.option("--role", required=True,
              help="org_admin | manager | accountant | clerk | installer | operator | resident (with --account)")
@click.option("--name", default="")
@click.option("--account", "account_number", default="",
              help="a resident's account number (as on the invoice): they see only this account")
@click.option("--org", "org_ref", default="", help="organisation id or exact name (needed when there are several)")
@with_appcontext
def invite_user(email, role, name, account_number, org_ref):
    """Invite a person: the link to set their password (72 h) is mailed through the outbox and printed here.

    Example: balans cloud invite-user --email buh@coop.ua --role accountant --name "Олена Коваль" --org 1

    A resident of an account: balans cloud invite-user --email ivan@ukr.net --role resident --account 01001
    """
    if account_number and role != "resident":
        raise click.ClickException("--account is for --role resident only")
    with session_scope(_app()) as db:
        org = _the_org(db, org_ref)
        try:
            user, link = invite(db, org.id, email, name, role, ACTOR, COMMAND_LINE_ROLE, _public_url(),
                                account=account_number)
        except PeopleError as exc:
            raise click.ClickException(str(exc)) from exc
        linked = f", account {account_number}" if user.account_id else ""
        click.echo(f"invited {user.email} ({user.role}{linked}) to {org.name}; the mail is queued "
                   "(balans cloud send-mail)")
        click.echo(link)


def _change(email: str, change) -> str:
    with session_scope(_app()) as db:
        user = _user(db, email)
        try:
            change(db, user)
        except PeopleError as exc:
            raise click.ClickException(str(exc)) from exc
        return f"{user.email}: {user.role}, {'active' if user.active else 'disabled'}"


@performs(Action.SET_UP)
@click.command("disable-user")
@click.option("--email", required=True)
@with_appcontext
def disable_user(email):
    """Disable a user: every session of theirs ends now.  Example: balans cloud disable-user --email x@coop.ua"""
    click.echo(_change(email, lambda db, user: set_active(db, user, False, ACTOR, None, COMMAND_LINE_ROLE)))


@performs(Action.SET_UP)
@click.command("enable-user")
@click.option("--email", required=True)
@with_appcontext
def enable_user(email):
    """Let a disabled user sign in again.  Example: balans cloud enable-user --email x@coop.ua"""
    click.echo(_change(email, lambda db, user: set_active(db, user, True, ACTOR, None, COMMAND_LINE_ROLE)))


@performs(Action.SET_UP)
@click.command("set-role")
@click.option("--email", required=True)
@click.option("--role", required=True)
@with_appcontext
def set_role_cmd(email, role):
    """Change a user's role.  Example: balans cloud set-role --email x@coop.ua --role accountant"""
    click.echo(_change(email, lambda db, user: set_role(db, user, role, ACTOR, COMMAND_LINE_ROLE)))


@performs(Action.SET_UP)
@click.command("invite-codes")
@click.option("--site", "site_code", required=True)
@site_org_option
@click.option("--list", "show", is_flag=True, help="print every account's code (for a mail merge)")
@with_appcontext
def invite_codes(site_code, org_ref, show):
    """Give every account of a site that lacks one its invitation code (issuing a run does it too).

    Example: balans cloud invite-codes --site TP-118 --list
    """
    with session_scope(_app()) as db:
        site = find_site(db, site_code, org_ref)
        ids = db.scalars(select(Account.id).where(Account.site_id == site.id)).all()
        made = ensure_invite_codes(db, ids)
        click.echo(f"{made} codes made, {len(ids) - made} accounts already had one")
        if show:
            for number, code in db.execute(select(Account.number, Account.invite_code)
                                           .where(Account.site_id == site.id).order_by(Account.number)):
                click.echo(f"{number}\t{code}")


@performs(Action.SET_UP)
@click.command("regenerate-code")
@click.option("--account", "number", required=True, help="account number")
@click.option("--org", "org_ref", default="", help="organisation id or exact name (needed when there are several)")
@with_appcontext
def regenerate_code_cmd(number, org_ref):
    """A new invitation code for an account; the old one stops working.

    Example: balans cloud regenerate-code --account 01001 --org 1
    """
    with session_scope(_app()) as db:
        org = _the_org(db, org_ref)
        account = db.scalar(select(Account).where(Account.org_id == org.id, Account.number == number))
        if account is None:
            raise click.ClickException(f"account {number} not found in {org.name}")
        click.echo(f"{account.number}\t{regenerate_code(db, account, ACTOR)}")


COMMANDS = [users, invite_user, disable_user, enable_user, set_role_cmd, invite_codes, regenerate_code_cmd]
