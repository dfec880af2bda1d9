"""Who is signed in: argon2 password hashes, the session's user, and the permission check every page makes."""

from __future__ import annotations

import contextlib
import functools
import secrets
from collections.abc import Callable
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import abort, current_app, g, redirect, request, session, url_for

from cloud import db
from cloud.accounts.reauth import needs_fresh_password, reauth_page
from cloud.accounts.sessions import is_fresh, live_session
from cloud.models import Organisation, User, UserSession, utcnow
from cloud.permissions import Action, allowed

hasher = PasswordHasher()
SESSION_TOKEN = "sid"  # the cookie's key for the server-side session's token
LONGEST_PASSWORD = 1024  # longer is refused unhashed-at-length: argon2 of megabytes is a denial of service
_dummy_hashes: dict[tuple, str] = {}


def hash_password(password: str) -> str:
    return hasher.hash(password)


def check_password(user: User, password: str) -> bool:
    try:
        return hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _dummy_hash() -> str:
    """A hash of a random password made with the hasher in use, so an unknown e-mail costs what a known one does."""
    key = (hasher.time_cost, hasher.memory_cost, hasher.parallelism, hasher.hash_len)
    if key not in _dummy_hashes:
        _dummy_hashes[key] = hasher.hash(secrets.token_hex(16))
    return _dummy_hashes[key]


def verify_login(user: User | None, password: str) -> bool:
    """The password checked against the user's hash — or, for no such user, against a dummy hash (same time
    spent, then False): the answer's timing does not tell which e-mails have accounts."""
    candidate = password[:LONGEST_PASSWORD]
    if user is None:
        with contextlib.suppress(VerificationError, InvalidHashError):
            hasher.verify(_dummy_hash(), candidate)
        return False
    return check_password(user, candidate) and len(password) <= LONGEST_PASSWORD


def session_limits() -> tuple[timedelta, timedelta]:
    config = current_app.config
    return timedelta(minutes=config["SESSION_IDLE_MINUTES"]), timedelta(hours=config["SESSION_MAX_HOURS"])


def current_session() -> UserSession | None:
    """The signed-in browser's session row (None when signed out, ended, expired, or the user is disabled)."""
    if "user_session" not in g:
        g.user_session, g.user = None, None
        token = session.get(SESSION_TOKEN)
        if isinstance(token, str) and token:
            found = live_session(db.session(), token, utcnow(), *session_limits())
            user = db.session().get(User, found.user_id) if found is not None else None
            if db.session().dirty:  # seen_at moved on, or an expired session ended
                with db.write_lock():
                    db.session().commit()
            if user is not None and user.active:
                g.user_session, g.user = found, user
    return g.user_session


def current_user() -> User | None:
    current_session()
    return g.user


def current_org() -> Organisation:
    """The signed-in user's own organisation, the scope of every page (404 for a user without one)."""
    user = current_user()
    org = db.session().get(Organisation, user.org_id) if user is not None and user.org_id else None
    if org is None:
        abort(404)
    return org


def requires(action: Action) -> Callable:
    """Only signed-in users whose role may perform ``action`` (cloud/permissions.py); others sign in or get 403.
    A sensitive change (cloud/accounts/reauth.py) also wants the password typed within ``REAUTH_MINUTES``."""

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            user = current_user()
            if user is None:
                return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
            if not allowed(user.role, action):
                abort(403)
            if needs_fresh_password(action) and not is_fresh(
                    g.user_session, utcnow(), timedelta(minutes=current_app.config["REAUTH_MINUTES"])):
                return reauth_page(user)
            return view(*args, **kwargs)

        return wrapped

    return decorator
