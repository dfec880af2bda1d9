"""Sign-in for people: argon2 password hashes, a session cookie, roles, and organisation scoping."""

from __future__ import annotations

import functools
from collections.abc import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Blueprint, abort, g, redirect, render_template, request, session, url_for
from sqlalchemy import func, select

from cloud import db
from cloud.i18n import translate
from cloud.models import User

bp = Blueprint("auth", __name__)
hasher = PasswordHasher()

STAFF_ROLES = ("operator", "org_admin", "manager", "accountant", "clerk", "installer")


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


def login_required(*roles: str) -> Callable:
    """Only signed-in users with one of ``roles`` (any role when none is given)."""

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            user = current_user()
            if user is None:
                return redirect(url_for("auth.login", next=request.path))
            if roles and user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        email = request.form.get("email", "").strip().lower()
        user = db.session().scalar(select(User).where(func.lower(User.email) == email))
        if user is not None and user.active and check_password(user, request.form.get("password", "")):
            session.clear()
            session["user_id"] = user.id
            session["lang"] = user.lang
            target = request.args.get("next", "")
            # Only local paths: never an open redirect.
            if not target.startswith("/") or target.startswith("//"):
                target = url_for("auth.home")
            return redirect(target)
        error = translate("bad_login")
    return render_template("login.html", error=error), 200 if error is None else 401


@bp.post("/logout")
def logout():
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    return redirect(url_for("auth.login"))


@bp.get("/")
def home():
    user = current_user()
    if user is None:
        return redirect(url_for("auth.login"))
    if user.role == "resident":
        return redirect(url_for("cabinet.index"))
    return redirect(url_for("dashboard.sites"))
