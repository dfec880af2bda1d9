"""The people pages (``/people``: the org admin's list, invitations, roles, disabling; the residents'
invitation codes), the public links a person follows (``/people/welcome/<token>``, ``/forgot``,
``/reset/<token>``, ``/join``), and the same changes as JSON (``/api/v1/people``)."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy import select

from cloud import db
from cloud.accounts.auth import SESSION_TOKEN, current_user, requires
from cloud.accounts.invite_codes import regenerate_code, residents_of
from cloud.accounts.people import (
    INVITE,
    RESET,
    PeopleError,
    assignable_roles,
    find_person,
    invite,
    join,
    live_token,
    org_people,
    request_reset,
    set_active,
    set_role,
    use_token,
)
from cloud.accounts.sessions import start_session
from cloud.accounts.throttle import ThrottlePolicy, locked_for, minutes_left, record_failure
from cloud.api.auth import api_actor, api_blueprint, api_error, api_org_id, api_requires, api_token
from cloud.clock import utcnow
from cloud.i18n import N_, explain, translate
from cloud.models import Account, User
from cloud.permissions import Action

bp = Blueprint("people", __name__)
api = api_blueprint("people_api", __name__, "/api/v1")
SHOWN_ACCOUNTS = 200
# Keys the templates build from data: a person's role (people/*.html) and why a mailed link is dead.
DATA_KEYS = (N_("person_role_operator"), N_("person_role_org_admin"), N_("person_role_manager"),
             N_("person_role_accountant"), N_("person_role_clerk"), N_("person_role_installer"),
             N_("person_role_resident"), N_("token_used"), N_("token_expired"), N_("token_unknown"))


def base_url() -> str:
    """Where a mailed link points: the configured public address, else the address this request came to."""
    return current_app.config.get("PUBLIC_URL") or request.host_url


def own_org_id() -> int:
    org_id = current_user().org_id
    if org_id is None:
        abort(404)
    return org_id


def _address() -> str:
    return (request.remote_addr or "")[:50]


def _sign_in(user: User) -> None:
    """Start a session for ``user`` who has just set their password (as the login form does)."""
    token = start_session(db.session(), user, _address(), utcnow())
    db.session().commit()
    session.clear()
    session[SESSION_TOKEN] = token
    session["lang"] = user.lang


def _locked(wait):
    minutes = minutes_left(wait)
    return translate("login_locked", minutes=minutes), {"Retry-After": str(minutes * 60)}


# The org admin's pages.

def _list_page(form: dict | None = None, error: PeopleError | None = None, status: int = 200):
    user = current_user()
    return render_template("people/list.html", people=org_people(db.session(), own_org_id()),
                           roles=assignable_roles(user.role), form=form or {},
                           error=explain(error) if error else None, field=error.field if error else ""), status


@bp.get("/people/")
@requires(Action.SET_UP)
def people():
    return _list_page()


@bp.post("/people/invite")
@requires(Action.SET_UP)
def invite_person():
    org_id, user = own_org_id(), current_user()
    form = {key: request.form.get(key, "") for key in ("email", "name", "role", "account")}
    with db.write_lock():
        try:
            # A resident (the second form: role "resident") is invited to an account, by its number.
            invited, _ = invite(db.session(), org_id, form["email"], form["name"], form["role"], user.email,
                                user.role, base_url(), account=form["account"])
        except PeopleError as exc:
            db.session().rollback()
            return _list_page(form, exc, 422)
        db.session().commit()
    flash(translate("person_invited", email=invited.email), "ok")
    return redirect(url_for("people.people"))


@bp.get("/people/<int:user_id>")
@requires(Action.SET_UP)
def person(user_id: int):
    return _person_page(_own_person(user_id))


def _own_person(user_id: int) -> User:
    found = find_person(db.session(), own_org_id(), user_id)
    if found is None:
        abort(404)
    return found


def _person_page(found: User, error: PeopleError | None = None, status: int = 200):
    account = db.session().get(Account, found.account_id) if found.account_id else None
    return render_template("people/person.html", person=found, account=account,
                           roles=assignable_roles(current_user().role), error=explain(error) if error else None,
                           field=error.field if error else ""), status


@bp.post("/people/<int:user_id>")
@requires(Action.SET_UP)
def change_person(user_id: int):
    found, user = _own_person(user_id), current_user()
    with db.write_lock():
        try:
            if "role" in request.form:
                set_role(db.session(), found, request.form["role"], user.email, user.role)
            if request.form.get("active") in ("0", "1"):
                set_active(db.session(), found, request.form["active"] == "1", user.email, user.id, user.role)
        except PeopleError as exc:
            db.session().rollback()
            return _person_page(found, exc, 422)
        db.session().commit()
    flash(translate("person_saved", email=found.email), "ok")
    return redirect(url_for("people.person", user_id=found.id))


@bp.get("/people/codes")
@requires(Action.SET_UP)
def codes():
    org_id = own_org_id()
    query = request.args.get("q", "").strip()[:40]
    statement = select(Account).where(Account.org_id == org_id).order_by(Account.number).limit(SHOWN_ACCOUNTS)
    if query:
        statement = statement.where(Account.number.contains(query))
    accounts = db.session().scalars(statement).all()
    return render_template("people/codes.html", q=query, limit=SHOWN_ACCOUNTS,
                           accounts=[(a, residents_of(db.session(), a)) for a in accounts])


@bp.post("/people/codes/<int:account_id>")
@requires(Action.SET_UP)
def regenerate(account_id: int):
    account = db.session().get(Account, account_id)
    if account is None or account.org_id != own_org_id():
        abort(404)
    with db.write_lock():
        regenerate_code(db.session(), account, current_user().email)
        db.session().commit()
    flash(translate("code_regenerated", account=account.number), "ok")
    return redirect(url_for("people.codes", q=account.number))


# The links a person follows, signed out.

def _token_page(token: str, purpose: str):
    template = "people/set_password.html"
    row, why = live_token(db.session(), token, purpose, utcnow())
    if row is None:
        return render_template(template, purpose=purpose, dead=why, error=None), 410 if why != "unknown" else 404
    user = db.session().get(User, row.user_id)
    if request.method == "GET":
        return render_template(template, purpose=purpose, dead="", email=user.email, error=None)
    with db.write_lock():
        try:
            use_token(db.session(), row, request.form.get("password", ""), request.form.get("password_again", ""),
                      utcnow())
        except PeopleError as exc:
            db.session().rollback()
            return render_template(template, purpose=purpose, dead="", email=user.email, error=explain(exc),
                                   field=exc.field), 422
        _sign_in(user)
    return redirect(url_for("auth.home"))


@bp.route("/people/welcome/<token>", methods=["GET", "POST"])
def welcome(token: str):
    return _token_page(token, INVITE)


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset(token: str):
    return _token_page(token, RESET)


@bp.route("/forgot", methods=["GET", "POST"])
def forgot():
    if request.method == "GET":
        return render_template("people/forgot.html", sent=False, error=None)
    email = request.form.get("email", "").strip().lower()[:190]
    keys = f"reset:{email}", f"reset:{_address()}"
    now = utcnow()
    wait = locked_for(db.session(), *keys, now)
    if wait is not None:
        message, headers = _locked(wait)
        return render_template("people/forgot.html", sent=False, error=message), 429, headers
    with db.write_lock():
        # Every request counts, found or not: the throttle stops a mail bomb at one address and a scan of many.
        record_failure(db.session(), ThrottlePolicy.from_config(current_app.config), *keys, now, None)
        if email:
            request_reset(db.session(), email, base_url())
        db.session().commit()
    return render_template("people/forgot.html", sent=True, error=None)


@bp.route("/join", methods=["GET", "POST"])
def join_page():
    form = {key: request.form.get(key, "") for key in ("code", "email")}
    if request.method == "GET":
        return render_template("people/join.html", form=form, error=None, field="")
    keys = f"join:{form['email'].strip().lower()[:190]}", f"join:{_address()}"
    now = utcnow()
    wait = locked_for(db.session(), *keys, now)
    if wait is not None:
        message, headers = _locked(wait)
        return render_template("people/join.html", form=form, error=message, field=""), 429, headers
    with db.write_lock():
        try:
            user = join(db.session(), form["code"], form["email"], request.form.get("password", ""),
                        request.form.get("password_again", ""), g.get("lang") or "uk")
        except PeopleError as exc:
            db.session().rollback()
            if exc.field == "code":  # a wrong code counts like a wrong password: guessing gets locked out
                lock = record_failure(db.session(), ThrottlePolicy.from_config(current_app.config), *keys, now,
                                      None)
                db.session().commit()
                if lock is not None:
                    message, headers = _locked(lock)
                    return render_template("people/join.html", form=form, error=message, field=""), 429, headers
            return render_template("people/join.html", form=form, error=explain(exc), field=exc.field), 422
        db.session().commit()
        _sign_in(user)
    return redirect(url_for("auth.home"))


# The JSON API.

def _person_json(user: User) -> dict:
    return {"id": user.id, "email": user.email, "name": user.name, "role": user.role, "active": user.active,
            "account_id": user.account_id}


def _refused(exc: PeopleError):
    return api_error(422, "invalid", str(exc), exc.field)


@api.get("/people")
@api_requires(Action.SET_UP)
def api_people():
    return {"people": [{**_person_json(p.user), "last_sign_in": p.last_sign_in.isoformat() + "Z"
                        if p.last_sign_in else None} for p in org_people(db.session(), api_org_id())]}


@api.post("/people/invite")
@api_requires(Action.SET_UP)
def api_invite():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return api_error(400, "bad_request", "send a JSON object {email, role, name, account_id?}")
    role, account_id = str(body.get("role", "")), body.get("account_id")
    if role == "resident" and (not isinstance(account_id, int) or isinstance(account_id, bool)):
        return api_error(422, "invalid", "a resident is invited to an account: account_id must be its id",
                         "account_id")
    if role != "resident" and account_id is not None:
        return api_error(422, "invalid", "account_id is for role resident only", "account_id")
    with db.write_lock():
        try:
            user, _ = invite(db.session(), api_org_id(), str(body.get("email", "")), str(body.get("name", "")),
                             role, api_actor(), api_token().role, base_url(), account=account_id)
        except PeopleError as exc:
            db.session().rollback()
            if exc.field == "account":
                exc.field = "account_id"
            return _refused(exc)
        db.session().commit()
    return {**_person_json(user), "mailed": True}, 201


@api.put("/people/<int:user_id>")
@api_requires(Action.SET_UP)
def api_change(user_id: int):
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return api_error(400, "bad_request", "send a JSON object {role?, active?}")
    if "active" in body and not isinstance(body["active"], bool):
        return api_error(422, "invalid", "active must be true or false", "active")
    found = find_person(db.session(), api_org_id(), user_id)
    if found is None:
        return api_error(404, "not_found", f"no person {user_id} in this organisation")
    with db.write_lock():
        try:
            if "role" in body:
                set_role(db.session(), found, str(body["role"]), api_actor(), api_token().role)
            if "active" in body:
                set_active(db.session(), found, body["active"], api_actor(), None, api_token().role)
        except PeopleError as exc:
            db.session().rollback()
            return _refused(exc)
        db.session().commit()
    return _person_json(found)


@api.post("/accounts/<int:account_id>/invite-code")
@api_requires(Action.SET_UP)
def api_regenerate(account_id: int):
    account = db.session().get(Account, account_id)
    if account is None or account.org_id != api_org_id():
        return api_error(404, "not_found", f"no account {account_id} in this organisation")
    with db.write_lock():
        code = regenerate_code(db.session(), account, api_actor())
        db.session().commit()
    return {"account": account.number, "invite_code": code}

