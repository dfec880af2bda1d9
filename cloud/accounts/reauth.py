"""Sensitive changes ask for the password again: a session left open on the office PC (or a stolen cookie)
must not issue invoices, correct them, manage gateways or people unless the password was typed within
``REAUTH_MINUTES``. Signing in counts as typing it.

Which changes are sensitive is said here, by permission (cloud/permissions.py) and, where one page serves a
plain and a sensitive action, by the form's button.
"""

from __future__ import annotations

from flask import render_template, request

from cloud.accounts.redirects import same_site_path
from cloud.i18n import translate
from cloud.models import User
from cloud.permissions import Action

SENSITIVE_ACTIONS = frozenset({Action.ISSUE_INVOICES, Action.CORRECT_INVOICE, Action.MANAGE_GATEWAYS,
                               Action.SET_UP})
# The billing page drafts (anyone there) and issues (the accountant): issuing is the sensitive one.
SENSITIVE_BUTTONS = {"billing.billing": ("action", "issue")}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def needs_fresh_password(action: Action) -> bool:
    """Does this request change something sensitive? (Reading a page never does.)"""
    if request.method in SAFE_METHODS:
        return False
    if action in SENSITIVE_ACTIONS:
        return True
    button = SENSITIVE_BUTTONS.get(request.endpoint or "")
    return button is not None and request.form.get(button[0]) == button[1]


def return_path() -> str:
    """Where to go once the password is confirmed: the page the form was on (the POST itself is not replayed:
    the person presses the button again, knowingly)."""
    referrer = request.referrer or ""
    host = request.host_url.rstrip("/")
    if referrer.startswith(host + "/"):
        found = same_site_path(referrer[len(host):])
        if found:
            return found
    return same_site_path(request.full_path.rstrip("?")) if request.method in SAFE_METHODS else "/"


def reauth_page(user: User):
    """401 with the password form; nothing of the refused request is done."""
    return render_template("login.html", reauth=True, email=user.email, next=return_path(),
                           error=translate("reauth_needed")), 401
