"""The office's JSON API as one OpenAPI 3.1 document (served at /api/v1/office/openapi.json): the register's
paths (cloud/register/openapi.py, also served on its own at /api/v1/register/openapi.json) merged with the
settings, people, admin, month and jobs APIs described here. Every API takes the same Bearer token and answers
errors as ``{"error", "message"[, "field"]}`` (docs/api.md). The gateway API has its own document and signature
(/api/v1/openapi.json), so it is not part of this one."""

from __future__ import annotations

from flask import jsonify

from cloud.admin.tokens import ENROL_HOURS
from cloud.api.auth import api_blueprint
from cloud.api.tokens import TOKEN_ROLES
from cloud.register.openapi import ERROR
from cloud.register.openapi import OPENAPI as REGISTER
from cloud.settings.organisation import KEYS as ORGANISATION_KEYS
from cloud.settings.organisation import NET_BILLING_CHOICES
from cloud.settings.rules import CHANNELS
from cloud.settings.tariffs import TARIFF_KINDS

bp = api_blueprint("office_openapi", __name__, "/api/v1/office")

TEXT = {"type": "string", "maxLength": 400}
DAY = {"type": "string", "maxLength": 20, "description": "a date: 2026-10-15 (or 15.10.2026)"}
MOMENT = {"type": ["string", "null"], "description": "UTC, ISO 8601 with Z"}
ID = {"type": "integer", "minimum": 1, "maximum": 2_147_483_647}
WORDS = {"400": "not a JSON object", "401": "no token, or a revoked one", "403": "the token's role may not do this",
         "404": "not in this organisation", "422": "a field refused (nothing written): the error names it"}


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def _answers(ok: str, schema: dict, *refusals: str) -> dict:
    answers = {ok: {"description": "done", "content": _json(schema)}}
    answers.update({code: {"description": WORDS[code], "content": _json(ERROR)}
                    for code in sorted({"401", "403", *refusals})})
    return answers


def _body(schema: dict, required: bool = True) -> dict:
    return {"required": required, "content": _json(schema)}


def _path(name: str, schema: dict) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _texts(*keys: str, required: tuple[str, ...] = (), **special: dict) -> dict:
    return {"type": "object", "additionalProperties": False, "required": list(required),
            "properties": {key: special.get(key, TEXT) for key in keys}}


def _list(name: str, item: dict) -> dict:
    return {"type": "object", "required": [name], "properties": {name: {"type": "array", "items": item}}}


# Settings (cloud/settings/api.py): values are text as typed in the forms; amounts "0.5", never floats.
ORGANISATION = {"type": "object", "properties": {key: {"type": "string"} for key in ORGANISATION_KEYS}}
ORGANISATION_TEXTS = _texts(*ORGANISATION_KEYS, net_billing={"type": "string", "enum": list(NET_BILLING_CHOICES)})
TARIFF = {"type": "object", "required": ["id", "kind", "valid_from"], "properties": {
    "id": {"type": "integer"}, "kind": {"type": "string"}, "purchase_price": {"type": "string"},
    "coefficient": {"type": "string"}, "valid_from": {"type": "string"}, "valid_to": {"type": ["string", "null"]},
    "segment": {"type": "string"}, "zones": {}, "monthly_fee": {"type": "string"}, "fee_name": {"type": "string"},
    "in_force": {"type": "boolean"}}}
TARIFF_TEXTS = _texts("kind", "price", "coefficient", "valid_from", "valid_to", "segment", "zones", "monthly_fee",
                      "fee_name", required=("price", "valid_from"),
                      kind={"type": "string", "enum": list(TARIFF_KINDS)}, valid_from=DAY, valid_to=DAY)
SEASON = {"type": "object", "required": ["id", "starts"], "properties": {
    "id": {"type": "integer"}, "starts": {"type": "string"}, "ends": {"type": ["string", "null"]}}}
RULE = {"type": "object", "required": ["id", "name"], "properties": {
    "id": {"type": "integer"}, "name": {"type": "string"}, "min_debt": {"type": "string"},
    "min_days": {"type": "integer"}, "channels": {"type": "array", "items": {"type": "string"}},
    "active": {"type": "boolean"}, "text": {"type": "string"}}}
RULE_TEXTS = _texts("name", "min_debt", "min_days", "channels", "active", "text",
                    channels={"type": "string", "description": f"{' and/or '.join(CHANNELS)}, comma-separated"},
                    active={"type": "boolean"})

# People (cloud/accounts/people_views.py).
PERSON = {"type": "object", "required": ["id", "email", "role", "active"], "properties": {
    "id": {"type": "integer"}, "email": {"type": "string"}, "name": {"type": "string"}, "role": {"type": "string"},
    "active": {"type": "boolean"}, "account_id": {"type": ["integer", "null"]}, "last_sign_in": MOMENT}}
INVITE = {"type": "object", "required": ["email", "role"], "properties": {
    "email": {"type": "string", "maxLength": 200}, "name": {"type": "string", "maxLength": 200},
    "role": {"type": "string", "description": "a staff role, or resident (then account_id is needed)"},
    "account_id": {**ID, "description": "the account a resident is invited to (role resident only)"}}}
CHANGE_PERSON = {"type": "object", "properties": {"role": {"type": "string"}, "active": {"type": "boolean"}}}

# Admin (cloud/admin/views.py).
ENROLMENT = {"type": "object", "properties": {"id": {"type": "integer"}, "site": {"type": "string"},
                                              "expires_at": MOMENT}}
NEW_ENROLMENT = {"type": "object", "required": ["site", "token", "hours", "command"], "properties": {
    "site": {"type": "string"}, "token": {"type": "string", "description": "shown once"},
    "hours": {"type": "integer"}, "command": {"type": "string", "description": "what the installer runs"}}}
API_TOKEN = {"type": "object", "required": ["id", "name", "role"], "properties": {
    "id": {"type": "integer"}, "name": {"type": "string"}, "role": {"type": "string"}, "created_at": MOMENT,
    "last_used_at": MOMENT, "revoked_at": MOMENT, "token": {"type": "string", "description": "shown once"}}}

# Month and jobs (cloud/month/views.py, cloud/jobs/views.py).
JOB = {"type": "object", "required": ["id", "kind", "status"], "properties": {
    "id": {"type": "integer"}, "kind": {"type": "string"},
    "status": {"type": "string", "enum": ["queued", "running", "done", "failed"]},
    "done": {"type": "integer"}, "total": {"type": "integer"}, "message": {"type": "string"},
    "attempts": {"type": "integer"}, "params": {"type": "object"}, "result": {"type": ["object", "null"]},
    "actor": {"type": "string"}, "created_at": MOMENT, "started_at": MOMENT, "finished_at": MOMENT,
    "messages": {"type": "integer", "description": "e-mail: invoices put in the outbox"}}}
NULLABLE_TEXT = {"type": ["string", "null"]}
MONTH = {"type": "object", "required": ["site", "period", "readings", "changes"], "properties": {
    "site": {"type": "string"}, "period": {"type": "string"}, "error": NULLABLE_TEXT,
    "unit": {"type": "string", "enum": ["kWh", "Gcal"]},
    "building": {"type": ["object", "null"], "description": "a heat site's building meter",
                 "properties": {"meter": NULLABLE_TEXT, "read": {"type": "boolean"}, "gcal": NULLABLE_TEXT}},
    "readings": {"type": "array", "items": {"type": "object", "properties": {
        "account": {"type": "string"}, "meters": {"type": "string"},
        "state": {"type": "string", "enum": ["measured", "estimated", "missing"]}, "kwh": NULLABLE_TEXT,
        "estimate_months": {"type": "integer"}, "unread": {"type": "array", "items": {"type": "string"}}}}},
    "read_by": {"type": "object", "description": "a heat site's: meter code → who read the counters billed",
                "additionalProperties": {"type": "array", "items": {
                    "type": "string", "description": "gateway, office, resident, …"}}},
    "changes": {"type": "array", "items": {"type": "object", "properties": {
        key: NULLABLE_TEXT for key in ("account", "kwh", "amount", "last_kwh", "last_amount")}}}}}
SITE_PERIOD = [_path("code", {"type": "string", "maxLength": 40}),
               _path("period", {"type": "string", "maxLength": 10, "description": "YYYY-MM (Kyiv's month)"})]

OFFICE_PATHS = {
    "/api/v1/settings/organisation": {
        "get": {"summary": "The organisation's details, net billing and invoice note",
                "responses": _answers("200", ORGANISATION)},
        "patch": {"summary": "Change the settings given (ЄДРПОУ and IBAN check digits are checked)",
                  "requestBody": _body(ORGANISATION_TEXTS), "responses": _answers("200", ORGANISATION, "400", "422")},
    },
    "/api/v1/settings/tariffs": {
        "get": {"summary": "Every dated tariff, the one in force today marked",
                "responses": _answers("200", {"type": "object", "properties": {
                    "today": {"type": "string"}, "tariffs": {"type": "array", "items": TARIFF}}})},
        "post": {"summary": "A new dated tariff (the one before it ends the day before)",
                 "requestBody": _body(TARIFF_TEXTS), "responses": _answers("201", TARIFF, "400", "422")},
    },
    "/api/v1/settings/heating-seasons": {
        "get": {"summary": "The heating seasons (a heat organisation's)", "responses": _answers("200", _list(
            "seasons", SEASON))},
        "post": {"summary": "A heating season as the council declared it", "requestBody": _body(_texts(
            "starts", "ends", required=("starts",), starts=DAY, ends=DAY)),
                 "responses": _answers("201", SEASON, "400", "422")},
    },
    "/api/v1/settings/heating-seasons/{season_id}": {
        "patch": {"summary": "End a season", "parameters": [_path("season_id", ID)],
                  "requestBody": _body(_texts("ends", required=("ends",), ends=DAY)),
                  "responses": _answers("200", SEASON, "400", "404", "422")},
    },
    "/api/v1/settings/reminder-rules": {
        "get": {"summary": "The reminder rules to debtors", "responses": _answers("200", _list("rules", RULE))},
        "post": {"summary": "A new rule (name, min_debt and min_days needed)", "requestBody": _body(RULE_TEXTS),
                 "responses": _answers("201", RULE, "400", "422")},
    },
    "/api/v1/settings/reminder-rules/{rule_id}": {
        "patch": {"summary": "Change a rule", "parameters": [_path("rule_id", ID)], "requestBody": _body(RULE_TEXTS),
                  "responses": _answers("200", RULE, "400", "404", "422")},
    },
    "/api/v1/people": {
        "get": {"summary": "The organisation's people, staff first, with their last sign-in",
                "responses": _answers("200", _list("people", PERSON))},
    },
    "/api/v1/people/invite": {
        "post": {"summary": "Invite a person by e-mail (a link to set a password, 72 h); a resident to an account",
                 "requestBody": _body(INVITE), "responses": _answers("201", PERSON, "400", "422")},
    },
    "/api/v1/people/{user_id}": {
        "put": {"summary": "Change a person's role, or disable / enable them", "parameters": [_path("user_id", ID)],
                "requestBody": _body(CHANGE_PERSON), "responses": _answers("200", PERSON, "400", "404", "422")},
    },
    "/api/v1/accounts/{account_id}/invite-code": {
        "post": {"summary": "A new invitation code for an account (the old one stops working)",
                 "parameters": [_path("account_id", ID)], "responses": _answers("200", {"type": "object", "properties": {
                     "account": {"type": "string"}, "invite_code": {"type": "string"}}}, "404")},
    },
    "/api/v1/enrolment-tokens": {
        "get": {"summary": "Enrolment tokens not used yet", "responses": _answers("200", _list("tokens", ENROLMENT))},
        "post": {"summary": "A one-time token a new gateway enrols with",
                 "requestBody": _body({"type": "object", "required": ["site"], "properties": {
                     "site": {"type": "string", "maxLength": 40},
                     "hours": {"type": "integer", "enum": list(ENROL_HOURS)}}}),
                 "responses": _answers("201", NEW_ENROLMENT, "400", "422")},
    },
    "/api/v1/enrolment-tokens/{token_id}": {
        "delete": {"summary": "Cancel an unused enrolment token", "parameters": [_path("token_id", ID)],
                   "responses": _answers("200", {"type": "object", "properties": {
                       "id": {"type": "integer"}, "cancelled": {"type": "boolean"}}}, "404")},
    },
    "/api/v1/gateways/{code}/revoke": {
        "post": {"summary": "Revoke a gateway: its key stops working at once",
                 "parameters": [_path("code", {"type": "string", "maxLength": 40})],
                 "requestBody": _body({"type": "object", "properties": {"reason": {"type": "string",
                                                                                   "maxLength": 200}}}, False),
                 "responses": _answers("200", {"type": "object", "properties": {
                     "gateway": {"type": "string"}, "status": {"type": "string"}}}, "404")},
    },
    "/api/v1/api-tokens": {
        "get": {"summary": "The organisation's API tokens (never their secrets)",
                "responses": _answers("200", _list("tokens", API_TOKEN))},
        "post": {"summary": "A new API token: its secret is in this answer only",
                 "requestBody": _body({"type": "object", "required": ["name", "role"], "properties": {
                     "name": {"type": "string", "maxLength": 100},
                     "role": {"type": "string", "enum": list(TOKEN_ROLES)}}}),
                 "responses": _answers("201", API_TOKEN, "400", "422")},
    },
    "/api/v1/api-tokens/{token_id}": {
        "delete": {"summary": "Revoke an API token", "parameters": [_path("token_id", ID)],
                   "responses": _answers("200", API_TOKEN, "404")},
    },
    "/api/v1/sites/{code}/month/{period}": {
        "get": {"summary": "The month's readings (measured, estimated, missing) and the change against last month",
                "parameters": SITE_PERIOD, "responses": _answers("200", MONTH, "404", "422")},
    },
    "/api/v1/sites/{code}/month/{period}/draft": {
        "post": {"summary": "Queue the month's draft (a job: poll /api/v1/jobs/{id})", "parameters": SITE_PERIOD,
                 "responses": _answers("202", JOB, "404", "422")},
    },
    "/api/v1/sites/{code}/month/{period}/issue": {
        "post": {"summary": "Queue issuing the month's invoices (numbers, the ledger)", "parameters": SITE_PERIOD,
                 "responses": _answers("202", JOB, "404", "422")},
    },
    "/api/v1/sites/{code}/month/{period}/email": {
        "post": {"summary": "Put each issued invoice with an address in the outbox and queue sending them",
                 "parameters": SITE_PERIOD, "responses": _answers("202", JOB, "404", "422")},
    },
    "/api/v1/jobs": {
        "get": {"summary": "The organisation's 50 latest jobs", "responses": _answers("200", _list("jobs", JOB))},
    },
    "/api/v1/jobs/{job_id}": {
        "get": {"summary": "One job with its progress", "parameters": [_path("job_id", ID)],
                "responses": _answers("200", JOB, "404")},
    },
}

def _id_within(parameter: dict) -> dict:
    """An id in the path is within PostgreSQL's integer, as the routes' ``<int:…>`` accept (request_guard.py)."""
    if parameter.get("in") == "path" and parameter["schema"].get("type") == "integer":
        return {**parameter, "schema": {**parameter["schema"], "maximum": ID["maximum"]}}
    return parameter


def _guarded(paths: dict) -> dict:
    """Every operation may answer 400: the request guard (cloud/request_guard.py) refuses a control character
    or a malformed value in any parameter before the view runs. A copy: the register's document stays as is."""
    guard = {"description": "a parameter with a control character or not well formed", "content": _json(ERROR)}
    return {path: {method: {**operation, "parameters": [_id_within(p) for p in operation.get("parameters", [])],
                            "responses": {**operation["responses"], "400": operation["responses"].get("400", guard)}}
                   for method, operation in item.items()} for path, item in paths.items()}


OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "Balans office API", "version": "1.0.0",
             "description": "The office's work from a script or 1С: the register, settings, people, gateways' "
                            "tokens, the month and its jobs (docs/api.md). Send an API token made by the "
                            "organisation's admin as 'Authorization: Bearer <token>'."},
    "components": {"securitySchemes": {"token": {"type": "http", "scheme": "bearer"}}},
    "security": [{"token": []}],
    "paths": _guarded({**REGISTER["paths"], **OFFICE_PATHS}),
}


@bp.get("/openapi.json")
def openapi():
    return jsonify(OPENAPI)
