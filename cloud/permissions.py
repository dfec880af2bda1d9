"""Who may do what: every action a page, an API call or a command performs, and the roles allowed it.

One table, read by the views (``accounts.auth.requires``) and the commands (``cli.lookup.command_action``):
to change who may issue invoices, change ``GRANTS`` here and nowhere else.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    OPERATOR = "operator"  # Balans's own staff serving the organisation
    ORG_ADMIN = "org_admin"  # the organisation's administrator (голова правління, директор)
    MANAGER = "manager"  # board member, engineer: balances, losses, reports
    ACCOUNTANT = "accountant"  # бухгалтер: issues invoices, corrections, payments
    CLERK = "clerk"  # абонвідділ: readings, draft runs, printing invoices
    INSTALLER = "installer"  # puts gateways on site
    RESIDENT = "resident"  # абонент: their own account only
    SYSTEM = "system"  # the server's shell and scheduled jobs; never a person's role


PEOPLE = tuple(role for role in Role if role is not Role.SYSTEM)  # the roles a user may be given
STAFF = frozenset(PEOPLE) - {Role.RESIDENT}


class Action(StrEnum):
    VIEW_SITES = "sites.view"
    PRINT_INVOICES = "billing.print"
    RUN_BILLING = "billing.run"  # readings entered by the office, draft runs
    ISSUE_INVOICES = "billing.issue"  # a run issued: numbered invoices and ledger entries that never change
    CORRECT_INVOICE = "billing.correct"
    MANAGE_PAYMENTS = "payments.manage"
    VIEW_REPORTS = "reports.view"
    ADMINISTER = "admin.view"  # gateways, refusals, the audit log
    USE_CABINET = "cabinet.use"
    VIEW_REGISTER = "register.view"  # the subscriber and meter register, its export
    VIEW_METERS = "meters.view"  # the meter register alone: codes, roles, lines, account numbers; no one's name
    MANAGE_REGISTER = "register.manage"  # accounts created and changed, register files imported
    # What only the command line does today (the pages for them are coming).
    SET_UP = "setup"  # organisations, users, sites, tariffs, accounts, enrolment tokens
    MANAGE_GATEWAYS = "gateways.manage"  # revoke, verify, evidence
    SEND_MESSAGES = "messages.send"  # the outbox, reminders
    MAINTAIN = "maintain"  # schema, backup, restore, serve
    MANAGE_RELEASES = "releases.manage"  # gateway software: publish to the release channel, roll out (docs/updates.md)


_GRANTED: dict[Action, frozenset[Role]] = {
    Action.VIEW_SITES: STAFF,
    Action.PRINT_INVOICES: frozenset({Role.ORG_ADMIN, Role.MANAGER, Role.ACCOUNTANT, Role.CLERK, Role.OPERATOR}),
    Action.RUN_BILLING: frozenset({Role.ORG_ADMIN, Role.ACCOUNTANT, Role.CLERK, Role.MANAGER}),
    # Issuing is the legally meaningful act (a numbered первинний документ, a debt in the ledger), signed off by
    # whoever answers for the books: the accountant, or the admin who answers for the organisation. A clerk
    # prepares the month (readings, drafts) and a manager reviews it; neither issues. See docs/security.md.
    Action.ISSUE_INVOICES: frozenset({Role.ORG_ADMIN, Role.ACCOUNTANT}),
    Action.CORRECT_INVOICE: frozenset({Role.ORG_ADMIN, Role.ACCOUNTANT}),
    Action.MANAGE_PAYMENTS: frozenset({Role.ACCOUNTANT, Role.ORG_ADMIN}),
    Action.VIEW_REPORTS: frozenset({Role.ORG_ADMIN, Role.MANAGER, Role.ACCOUNTANT, Role.CLERK, Role.OPERATOR}),
    Action.ADMINISTER: frozenset({Role.ORG_ADMIN, Role.MANAGER, Role.OPERATOR}),
    Action.USE_CABINET: frozenset({Role.RESIDENT}),
    Action.VIEW_REGISTER: frozenset({Role.ORG_ADMIN, Role.MANAGER, Role.ACCOUNTANT, Role.CLERK, Role.OPERATOR}),
    # The installer's `balans provision init` matches the scanned meters with the register: it needs the meters,
    # not the subscribers' names, addresses and contacts.
    Action.VIEW_METERS: frozenset({Role.ORG_ADMIN, Role.MANAGER, Role.ACCOUNTANT, Role.CLERK, Role.OPERATOR,
                                   Role.INSTALLER}),
    # The абонвідділ keeps the register (seed 000: «Абонвідділ вносить або імпортує дані»), with the accountant
    # and the admin; a manager reads it.
    Action.MANAGE_REGISTER: frozenset({Role.ORG_ADMIN, Role.ACCOUNTANT, Role.CLERK, Role.OPERATOR}),
    Action.SET_UP: frozenset({Role.OPERATOR, Role.ORG_ADMIN}),
    Action.MANAGE_GATEWAYS: frozenset({Role.OPERATOR, Role.ORG_ADMIN}),
    Action.SEND_MESSAGES: frozenset({Role.OPERATOR, Role.ORG_ADMIN, Role.ACCOUNTANT}),
    Action.MAINTAIN: frozenset(),
    # The gateway software is the operator's, shared by every organisation: only the operator rolls it out.
    Action.MANAGE_RELEASES: frozenset({Role.OPERATOR}),
}
# Whoever holds the server's shell can do anything anyway: the command line acts as the system.
GRANTS = {action: roles | {Role.SYSTEM} for action, roles in _GRANTED.items()}
assert set(GRANTS) == set(Action), "every action has its roles"
COMMAND_LINE_ROLE = Role.SYSTEM


def allowed(role: str | Role, action: Action) -> bool:
    """May a user with ``role`` perform ``action``? An unknown role may do nothing."""
    try:
        return Role(role) in GRANTS[action]
    except ValueError:
        return False


def roles_for(action: Action) -> list[str]:
    """The roles allowed ``action``, in the order of ``Role`` (for messages and docs)."""
    return [role.value for role in PEOPLE if role in GRANTS[action]]
