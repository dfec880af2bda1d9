"""Who may do what is one table: every page and every command asks it, and a role it does not list is refused."""

from __future__ import annotations

import click
import pytest

from cloud.accounts.organisations import ROLES, SetupError, create_user
from cloud.cli.commands import COMMANDS, GROUPS
from cloud.permissions import COMMAND_LINE_ROLE, GRANTS, Action, Role, allowed, roles_for
from tests.cloud.office import account_with_meter, office


def every_command():
    yield from COMMANDS
    for group in GROUPS:
        yield from group.commands.values()


def test_every_command_says_which_action_it_performs_and_the_command_line_may():
    unmarked = [command.name for command in every_command() if not isinstance(getattr(command, "balans_action", None),
                                                                               Action)]
    assert unmarked == []
    assert all(allowed(COMMAND_LINE_ROLE, command.balans_action) for command in every_command())


def test_every_action_has_its_roles_and_the_system_role_is_nobodys():
    assert set(GRANTS) == set(Action)
    assert Role.SYSTEM.value not in ROLES and "system" not in roles_for(Action.MAINTAIN)
    assert not allowed("resident", Action.VIEW_SITES) and allowed("resident", Action.USE_CABINET)
    assert not allowed("clerk", Action.MANAGE_PAYMENTS) and allowed("accountant", Action.MANAGE_PAYMENTS)
    assert not allowed("no-such-role", Action.VIEW_SITES)


def test_nobody_can_be_given_the_system_role(db):
    with db() as session:
        org, _ = office(session)
        with pytest.raises(SetupError, match="role must be one of"):
            create_user(session, "root@coop.ua", "correct horse battery", "system", org)


@pytest.mark.parametrize(("role", "page", "status"), [
    ("resident", "/sites/TP-7", 403), ("resident", "/payments/cash", 403), ("resident", "/admin/audit", 403),
    ("resident", "/reports/turnover", 403), ("clerk", "/payments/cash", 403), ("clerk", "/admin/gateways", 403),
    ("manager", "/cabinet/", 403), ("accountant", "/payments/cash", 200), ("clerk", "/sites/TP-7/billing", 200),
])
def test_pages_follow_the_table(client, db, role, page, status):
    with db() as session:
        org, site = office(session)
        account = None
        if role == "resident":
            account, _ = account_with_meter(session, org, site, "01001")
        create_user(session, f"{role}@coop.ua", "correct horse battery", role, org, account=account)
    client.post("/login", data={"email": f"{role}@coop.ua", "password": "correct horse battery"})
    assert client.get(page).status_code == status


def test_a_command_the_table_refuses_says_who_may(monkeypatch):
    command = next(c for c in COMMANDS if c.name == "backup")
    monkeypatch.setitem(GRANTS, Action.MAINTAIN, frozenset({Role.OPERATOR}))
    with pytest.raises(click.ClickException, match="maintain is for operator"):
        command.callback(out="x")
