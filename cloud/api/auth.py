"""``api_requires(action)``: the API's gate. A request carries ``Authorization: Bearer <token>``; the token's
role must be allowed ``action`` (cloud/permissions.py). The view then reads ``api_org_id()`` for its scope and
``api_actor()`` for the audit log. Errors are JSON ``{"error", "message"[, "field"]}`` as in the ingest API."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta

from flask import Blueprint, g, jsonify, request
from werkzeug.exceptions import HTTPException

from cloud import db
from cloud.api.tokens import find_token
from cloud.clock import utcnow
from cloud.models import ApiToken
from cloud.permissions import Action, allowed

TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often (a read stays a read)


def api_error(status: int, code: str, message: str, field: str = ""):
    body = {"error": code, "message": message}
    if field:
        body["field"] = field
    return jsonify(body), status


def api_blueprint(name: str, import_name: str, url_prefix: str) -> Blueprint:
    """A blueprint of JSON endpoints whose HTTP errors (404, 405, 413 …) answer in JSON too. Register it among
    the CSRF-exempt blueprints in ``create_app``: a Bearer token is not sent by a browser on its own."""
    bp = Blueprint(name, import_name, url_prefix=url_prefix)

    @bp.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        return api_error(exc.code or 500, exc.name.lower().replace(" ", "_"), exc.description or exc.name)

    return bp


def api_token() -> ApiToken:
    return g.api_token


def api_org_id() -> int:
    return g.api_token.org_id


def api_actor() -> str:
    return f"api:{g.api_token.name}"


def api_requires(action: Action) -> Callable:
    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return _unauthorised("send the API token as 'Authorization: Bearer <token>'")
            row = find_token(db.session(), token.strip())
            if row is None:
                return _unauthorised("the API token is not known or was revoked")
            if not allowed(row.role, action):
                return api_error(403, "forbidden", f"this token acts as {row.role}, which may not {action.value}")
            g.api_token = row
            now = utcnow()
            if row.last_used_at is None or now - row.last_used_at > TOUCH_EVERY:
                row.last_used_at = now
                with db.write_lock():
                    db.session().commit()
            return view(*args, **kwargs)

        return wrapped

    return decorator


def _unauthorised(message: str):
    response, status = api_error(401, "unauthorised", message)
    response.headers["WWW-Authenticate"] = 'Bearer realm="balans"'
    return response, status
