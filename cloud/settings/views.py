"""The settings pages (/settings/): the organisation admin's one place for the details on every invoice, the
tariffs and their history, net billing for solar, the heating season, reminder rules and the invoice note —
each section its own short form. Scoped to the admin's organisation; every change is audited; the forms are
sensitive (SET_UP): an old password is asked again (cloud/accounts/reauth.py)."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from cloud import db
from cloud.accounts.auth import current_org, current_user, requires
from cloud.clock import kyiv_today
from cloud.i18n import N_, explain, translate
from cloud.models import Organisation
from cloud.notifications.reminders import PLACEHOLDERS
from cloud.permissions import Action
from cloud.settings.fields import SettingError, by_field
from cloud.settings.organisation import (
    DETAILS,
    NET_BILLING,
    NOTE,
    NOTE_LIMIT,
    organisation_values,
    stored_problems,
    update_organisation,
)
from cloud.settings.rules import own_rule, rule_values, rules, save_rule
from cloud.settings.seasons import add_season, end_season, seasons
from cloud.settings.tariffs import (
    FORM_KEYS,
    TARIFF_KINDS,
    add_tariff,
    default_kind,
    earliest_start,
    tariff_history,
)

bp = Blueprint("settings", __name__, url_prefix="/settings")
# Keys the templates build from data: a field's label, a tariff's kind, a net-billing choice, a channel.
DATA_KEYS = (N_("set_f_name"), N_("set_f_address"), N_("set_f_edrpou"), N_("set_f_iban"), N_("set_f_net_billing"),
             N_("set_f_export_price"), N_("set_f_invoice_note"), N_("set_f_kind"), N_("set_f_price"),
             N_("set_f_coefficient"), N_("set_f_valid_from"), N_("set_f_valid_to"), N_("set_f_segment"),
             N_("set_f_zones"), N_("set_f_monthly_fee"), N_("set_f_fee_name"), N_("set_f_starts"),
             N_("set_f_ends"), N_("set_f_rule_name"), N_("set_f_min_debt"), N_("set_f_min_days"),
             N_("set_f_channels"), N_("set_f_text"), N_("set_f_active"),
             N_("tariff_kind_cooperative"), N_("tariff_kind_supplier"),
             N_("tariff_kind_heat"), N_("net_netting"), N_("net_money"), N_("net_netting_means"),
             N_("net_money_means"), N_("channel_email"), N_("channel_telegram"))


own_org = current_org


def actor() -> str:
    return current_user().email


def explained(errors: list[SettingError]) -> dict[str, str]:
    return {field: explain(error) for field, error in by_field(errors).items()}


def _saved(endpoint: str, **values):
    flash(translate("settings_saved"), "ok")
    return redirect(url_for(endpoint, **values))


@bp.get("/")
@requires(Action.SET_UP)
def index():
    org = own_org()
    session = db.session()
    history = tariff_history(session, org.id, kyiv_today())
    return render_template("settings/index.html", org=org, values=organisation_values(org),
                           in_force=[row.tariff for row in history if row.in_force], seasons=seasons(session, org.id),
                           rules=rules(session, org.id))


def _org_form(org: Organisation, template: str, keys: tuple[str, ...], endpoint: str, **extra):
    errors = {}
    values = organisation_values(org)
    if request.method == "POST":
        sent = {key: request.form[key] for key in keys if key in request.form}  # a field not sent stays
        with db.write_lock():
            problems = update_organisation(db.session(), org, sent, actor())
            if problems:
                db.session().rollback()
            else:
                db.session().commit()
        if not problems:
            return _saved(endpoint)
        values, errors = {**values, **sent}, explained(problems)
    return render_template(template, org=org, values=values, errors=errors, **extra), 422 if errors else 200


@bp.route("/organisation", methods=["GET", "POST"])
@requires(Action.SET_UP)
def organisation():
    org = own_org()
    warnings = {key: explain(error) for key, error in stored_problems(org).items()}
    return _org_form(org, "settings/organisation.html", DETAILS, "settings.organisation", fields=DETAILS,
                     warnings=warnings)


@bp.route("/net-billing", methods=["GET", "POST"])
@requires(Action.SET_UP)
def net_billing():
    return _org_form(own_org(), "settings/net_billing.html", NET_BILLING, "settings.net_billing")


@bp.route("/invoice-note", methods=["GET", "POST"])
@requires(Action.SET_UP)
def invoice_note():
    return _org_form(own_org(), "settings/invoice_note.html", NOTE, "settings.invoice_note", limit=NOTE_LIMIT)


@bp.route("/tariffs", methods=["GET", "POST"])
@requires(Action.SET_UP)
def tariffs():
    org = own_org()
    session = db.session()
    errors, values = {}, {"kind": default_kind(org), "coefficient": "1", "monthly_fee": "0"}
    if request.method == "POST":
        values = {key: request.form.get(key, "") for key in FORM_KEYS}
        with db.write_lock():
            _, problems = add_tariff(session, org, values, actor())
            if problems:
                session.rollback()
            else:
                session.commit()
        if not problems:
            return _saved("settings.tariffs")
        errors = explained(problems)
    today = kyiv_today()
    return render_template("settings/tariffs.html", org=org, history=tariff_history(session, org.id, today),
                           today=today, earliest=earliest_start(session, org.id), values=values, errors=errors,
                           kinds=TARIFF_KINDS), 422 if errors else 200


@bp.route("/heating", methods=["GET", "POST"])
@requires(Action.SET_UP)
def heating():
    org = own_org()
    session = db.session()
    errors, values = {}, {"starts": "", "ends": ""}
    if request.method == "POST":
        values = {key: request.form.get(key, "") for key in ("starts", "ends")}
        with db.write_lock():
            _, problems = add_season(session, org, values, actor())
            if problems:
                session.rollback()
            else:
                session.commit()
        if not problems:
            return _saved("settings.heating")
        errors = explained(problems)
    return _heating_page(org, values, errors)


def _heating_page(org: Organisation, values: dict, errors: dict, end_errors: dict | None = None):
    return render_template("settings/heating.html", org=org, seasons=seasons(db.session(), org.id), values=values,
                           errors=errors, end_errors=end_errors or {}), 422 if errors or end_errors else 200


@bp.post("/heating/<int:season_id>/end")
@requires(Action.SET_UP)
def end_heating(season_id: int):
    org = own_org()
    session = db.session()
    with db.write_lock():
        _, problems = end_season(session, org, season_id, request.form.get("ends", ""), actor())
        if problems:
            session.rollback()
        else:
            session.commit()
    if problems:
        if problems[0].code == "err_set_no_season":
            abort(404)
        return _heating_page(org, {"starts": "", "ends": ""}, {}, {season_id: explain(problems[0])})
    return _saved("settings.heating")


@bp.route("/reminders", methods=["GET", "POST"])
@requires(Action.SET_UP)
def reminders():
    org = own_org()
    return _rule_form(org, None)


@bp.route("/reminders/<int:rule_id>", methods=["GET", "POST"])
@requires(Action.SET_UP)
def reminder(rule_id: int):
    org = own_org()
    rule = own_rule(db.session(), org, rule_id)
    if rule is None:
        abort(404)
    return _rule_form(org, rule)


def _rule_form(org: Organisation, rule):
    session = db.session()
    values, errors = rule_values(rule), {}
    if request.method == "POST":
        values = {key: request.form.get(key, "") for key in ("rule_name", "min_debt", "min_days", "text")}
        values["channels"] = ",".join(request.form.getlist("channels"))
        values["active"] = "yes" if request.form.get("active") else "no"
        with db.write_lock():
            saved, problems = save_rule(session, org, rule, values, actor())
            if problems:
                session.rollback()
            else:
                session.commit()
        if not problems:
            return _saved("settings.reminder", rule_id=saved.id)
        errors = explained(problems)
    return render_template("settings/reminders.html", org=org, rule=rule, rules=rules(session, org.id),
                           values=values, errors=errors,
                           placeholders=[f"{{{name}}}" for name in PLACEHOLDERS]), 422 if errors else 200


@bp.post("/reminders/<int:rule_id>/off")
@requires(Action.SET_UP)
def reminder_off(rule_id: int):
    org = own_org()
    session = db.session()
    rule = own_rule(session, org, rule_id)
    if rule is None:
        abort(404)
    with db.write_lock():
        save_rule(session, org, rule, {"active": "no"}, actor())
        session.commit()
    return _saved("settings.reminders")
