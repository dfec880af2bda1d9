"""``balans cloud api-token create | list | revoke``: keys for the JSON API (cloud/api/tokens.py)."""

from __future__ import annotations

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from cloud.api.tokens import TOKEN_ROLES, TokenError, make_token, org_tokens, revoke_token
from cloud.cli.lookup import app as _app
from cloud.cli.lookup import find_org, performs
from cloud.db import session_scope
from cloud.models import ApiToken
from cloud.permissions import Action

ACTOR = "cli"


@click.group("api-token")
def api_token_group():
    """API tokens: made (shown once), listed, revoked."""


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M") + " UTC" if value is not None else "—"


@performs(Action.SET_UP)
@api_token_group.command("create")
@click.option("--org", "org_ref", required=True, help="organisation id or exact name")
@click.option("--name", required=True, help="what it is for: «1С», «сайт кооперативу»")
@click.option("--role", required=True, help=" | ".join(TOKEN_ROLES))
@with_appcontext
def create(org_ref, name, role):
    """Make a token; it is printed once and only its hash is kept.

    Example: balans cloud api-token create --org 1 --name "1С" --role accountant
    """
    with session_scope(_app()) as db:
        try:
            row, token = make_token(db, find_org(db, org_ref), name, role, ACTOR)
        except TokenError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"API token {row.id} «{row.name}» ({row.role}); keep it now, it is not shown again:")
        click.echo(token)


@performs(Action.SET_UP)
@api_token_group.command("list")
@click.option("--org", "org_ref", required=True, help="organisation id or exact name")
@with_appcontext
def list_tokens(org_ref):
    """The organisation's tokens: id, name, role, made, last used, revoked.

    Example: balans cloud api-token list --org 1
    """
    with session_scope(_app()) as db:
        for row in org_tokens(db, find_org(db, org_ref).id):
            click.echo(f"{row.id}\t{row.name}\t{row.role}\tmade {_when(row.created_at)}\tused {_when(row.last_used_at)}"
                       + (f"\trevoked {_when(row.revoked_at)}" if row.revoked_at else ""))


@performs(Action.SET_UP)
@api_token_group.command("revoke")
@click.option("--org", "org_ref", required=True, help="organisation id or exact name")
@click.argument("token_id", type=int)
@with_appcontext
def revoke(org_ref, token_id):
    """Revoke a token by its id (from ``list``): it stops working at once.

    Example: balans cloud api-token revoke --org 1 3
    """
    with session_scope(_app()) as db:
        org = find_org(db, org_ref)
        row = db.scalar(select(ApiToken).where(ApiToken.id == token_id, ApiToken.org_id == org.id))
        if row is None:
            raise click.ClickException(f"no API token {token_id} in {org.name}")
        revoke_token(db, row, ACTOR)
        click.echo(f"API token {row.id} «{row.name}» revoked")
