"""Who is signed in: argon2 password hashes, the session's user, and the permission check every page makes."""

from __future__ import annotations

import functools
from collections.abc import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import abort, g, redirect, request, session, url_for

from cloud import db
from cloud.models import User
from cloud.permissions import Action, allowed

hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return hasher.hash(password)


def check_password(user: User, password: str) -> bool:
    try:
        return hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def current_user() -> User | None:
    if "user" not in g:
        user_id = session.get("user_id")
        g.user = db.session().get(User, user_id) if user_id else None
        if g.user is not None and not g.user.active:
            g.user = None
    return g.user


def requires(action: Action) -> Callable:
    """Only signed-in users whose role may perform ``action`` (cloud/permissions.py); others sign in or get 403."""

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            user = current_user()
            if user is None:
                return redirect(url_for("auth.login", next=request.path))
            if not allowed(user.role, action):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator
