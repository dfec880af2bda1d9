"""The release channel over HTTP and the updates page (docs/updates.md).

``/api/v1/updates/metadata/<name>`` and ``/api/v1/updates/targets/<file>`` are public: the gateway's TUF client
checks every byte against the keys it trusts, so they need no token. ``/api/v1/updates/status`` (Bearer) and the
page ``/admin/updates`` show releases (withdrawn ones marked), the rollout and each gateway of the organisation,
and warn the operator when the signed root or targets expire soon; the operator starts a rollout and re-offers a
rolled-back version from the page as from ``balans cloud release rollout`` and ``reoffer``.
"""

from __future__ import annotations

import re

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)

from cloud import db
from cloud.accounts.auth import current_user, requires
from cloud.api.auth import api_blueprint, api_org_id, api_requires
from cloud.i18n import N_, translate
from cloud.permissions import Action, allowed
from cloud.updates.repository import Channel, ReleaseError, channel_for, metadata_file, refresh
from cloud.updates.rollout import reoffer, start_rollout, status
from shared.calendar import parse_iso

# What a rollout from the page can be refused for, in the page's language (the command line says it in English).
ROLLOUT_ERRORS = (N_("err_release_version"), N_("err_release_percent"), N_("err_release_gateways"),
                  N_("err_release_gateway_list"), N_("err_release_withdrawn"), N_("err_reoffer_nothing"),
                  N_("err_reoffer_not_rolled_back"))

bp = Blueprint("updates", __name__, url_prefix="/admin")
api = api_blueprint("updates_api", __name__, "/api/v1/updates")


def channel() -> Channel:
    return channel_for(current_app.config, current_app.instance_path)


@api.get("/metadata/<name>")
def metadata(name: str):
    found = channel()
    if name == "timestamp.json":
        refresh(found)  # the online keys keep snapshot and timestamp from expiring
    path = metadata_file(found, name)
    if path is None:
        abort(404, f"no metadata {name}")
    response = send_file(path, mimetype="application/json", max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response


@api.get("/targets/<name>")
def target(name: str):
    targets = channel().targets
    path = targets / name
    if "/" in name or name.startswith(".") or name.endswith(".tmp") or not path.is_file():
        abort(404, f"no release package {name}")
    return send_file(path, mimetype="application/octet-stream", max_age=3600)


@api.get("/status")
@api_requires(Action.ADMINISTER)
def api_status():
    return jsonify(status(db.session(), api_org_id()))


@bp.get("/updates")
@requires(Action.ADMINISTER)
def updates_page():
    user = current_user()
    operator = allowed(user.role, Action.MANAGE_RELEASES)  # the operator sees the whole fleet, others their own
    return render_template("admin/updates.html", state=status(db.session(), None if operator else user.org_id),
                           can_roll_out=operator,
                           when=lambda text: parse_iso(text) if text else None)


@bp.post("/updates/rollout")
@requires(Action.MANAGE_RELEASES)
def roll_out():
    version = request.form.get("version", "").strip()
    percent = request.form.get("percent", "0").strip()
    gateways = [code.strip() for code in request.form.get("gateways", "").split(",") if code.strip()]
    if not re.fullmatch(r"[0-9]{1,3}", percent):  # ASCII digits only: "²" and "١٠" are not a percent
        flash(translate("err_release_percent"), "error")
        return redirect(url_for("updates.updates_page"))
    with db.write_lock():
        try:
            start_rollout(db.session(), version, int(percent), gateways, current_user().email)
        except ReleaseError as exc:
            db.session().rollback()
            flash(translate(exc.code, **exc.params) if exc.code in ROLLOUT_ERRORS else exc.message, "error")
            return redirect(url_for("updates.updates_page"))
        db.session().commit()
    flash(translate("rollout_started"), "ok")
    return redirect(url_for("updates.updates_page"))


@bp.post("/updates/reoffer")
@requires(Action.MANAGE_RELEASES)
def reoffer_version():
    version = request.form.get("version", "").strip()
    code = request.form.get("gateway", "").strip()
    with db.write_lock():
        try:
            reoffer(db.session(), version, [code] if code else [], current_user().email)
        except ReleaseError as exc:
            db.session().rollback()
            flash(translate(exc.code, **exc.params) if exc.code in ROLLOUT_ERRORS else exc.message, "error")
            return redirect(url_for("updates.updates_page"))
        db.session().commit()
    flash(translate("reoffered", version=version, gateway=code), "ok")
    return redirect(url_for("updates.updates_page"))
