"""Sign-in pages: the login form (throttled), confirming the password again before a sensitive change,
logout (which ends the session on the server), and the home page that sends each role where it works."""

from __future__ import annotations

from flask import Blueprint, current_app, g, redirect, render_template, request, session, url_for
from sqlalchemy import func, select

from cloud import db
from cloud.accounts.auth import SESSION_TOKEN, current_session, current_user, verify_login
from cloud.accounts.redirects import same_site_path
from cloud.accounts.sessions import end_session, start_session
from cloud.accounts.throttle import ThrottlePolicy, locked_for, minutes_left, record_failure, record_success
from cloud.i18n import translate
from cloud.models import User, utcnow
from cloud.permissions import Role

bp = Blueprint("auth", __name__)


def _refused_while_locked(wait):
    minutes = minutes_left(wait)
    page = render_template("login.html", error=translate("login_locked", minutes=minutes))
    return page, 429, {"Retry-After": str(minutes * 60)}


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "GET":
        return render_template("login.html", error=None)
    email = request.form.get("email", "").strip().lower()[:200]
    address = (request.remote_addr or "")[:64]
    now = utcnow()
    wait = locked_for(db.session(), email, address, now)
    if wait is not None:  # the password is not even looked at
        return _refused_while_locked(wait)
    user = db.session().scalar(select(User).where(func.lower(User.email) == email))
    if verify_login(user, request.form.get("password", "")) and user.active:
        with db.write_lock():
            record_success(db.session(), email, address, now)
            token = start_session(db.session(), user, address, now)
            db.session().commit()
        session.clear()  # a new cookie: nothing from before sign-in carries over
        session[SESSION_TOKEN] = token
        session["lang"] = user.lang
        # Only a path of this site, as the browser will read it: never an open redirect.
        return redirect(same_site_path(request.args.get("next")) or url_for("auth.home"))
    with db.write_lock():
        lock = record_failure(db.session(), ThrottlePolicy.from_config(current_app.config), email, address, now,
                              user.org_id if user is not None else None)
        db.session().commit()
    if lock is not None:
        return _refused_while_locked(lock)
    return render_template("login.html", error=translate("bad_login")), 401


@bp.post("/reauth")
def reauth():
    """The signed-in person types their password again; the session counts as freshly authenticated."""
    row, user = current_session(), current_user()
    target = same_site_path(request.form.get("next")) or url_for("auth.home")
    if row is None:
        return redirect(url_for("auth.login", next=target))
    now = utcnow()
    address = (request.remote_addr or "")[:64]
    wait = locked_for(db.session(), user.email.lower(), address, now)
    if wait is not None:
        return _refused_while_locked(wait)
    if verify_login(user, request.form.get("password", "")):
        with db.write_lock():
            row.authenticated_at = now
            db.session().commit()
        return redirect(target)
    # A wrong password here counts like one at the login form: a stolen cookie does not get unlimited guesses.
    with db.write_lock():
        lock = record_failure(db.session(), ThrottlePolicy.from_config(current_app.config), user.email.lower(),
                              address, now, user.org_id)
        db.session().commit()
    if lock is not None:
        return _refused_while_locked(lock)
    return render_template("login.html", reauth=True, email=user.email, next=target,
                           error=translate("bad_password")), 401


@bp.post("/logout")
def logout():
    token = session.get(SESSION_TOKEN)
    if isinstance(token, str) and token:
        with db.write_lock():
            end_session(db.session(), token, utcnow())
            db.session().commit()
    lang = session.get("lang")
    session.clear()
    g.pop("user", None)
    g.pop("user_session", None)
    if lang:
        session["lang"] = lang
    return redirect(url_for("auth.login"))


@bp.get("/")
def home():
    user = current_user()
    if user is None:
        return redirect(url_for("auth.login"))
    if user.role == Role.RESIDENT:
        return redirect(url_for("cabinet.index"))
    return redirect(url_for("sites.sites"))
