"""Sign-in pages: the login form, logout, and the home page that sends each role where it works."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, session, url_for
from sqlalchemy import func, select

from cloud import db
from cloud.accounts.auth import check_password, current_user
from cloud.accounts.redirects import same_site_path
from cloud.i18n import translate
from cloud.models import User
from cloud.permissions import Role

bp = Blueprint("auth", __name__)


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
            # Only a path of this site, as the browser will read it: never an open redirect.
            return redirect(same_site_path(request.args.get("next")) or url_for("auth.home"))
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
    if user.role == Role.RESIDENT:
        return redirect(url_for("cabinet.index"))
    return redirect(url_for("sites.sites"))
