"""The cloud → gateway API (docs/remote.md).

Signed by the gateway (``X-Balans-Signature``: Ed25519 of the canonical body): its heartbeat, the fetch of a site
configuration version, a request's result. With an office API token (Bearer, MANAGE_GATEWAYS): queue and list
requests, read a gateway's last heartbeat (GET …/heartbeat), make and read a site's configuration versions.
"""

from __future__ import annotations

from flask import current_app, jsonify, request
from sqlalchemy import select

from cloud import db
from cloud.api.auth import api_actor, api_blueprint, api_error, api_org_id, api_requires
from cloud.ingest.errors import IngestError
from cloud.ingest.health import (
    config_for,
    latest_health,
    queue_request,
    record_heartbeat,
    record_result,
    request_json,
    requests_of,
    verified_message,
)
from cloud.ingest.rate_limit import RateLimiter
from cloud.ingest.site_config import current_document, latest_version, new_version, version_json
from cloud.ingest.views import refused_screen, request_body, too_many
from cloud.models import Gateway, Site
from cloud.permissions import Action
from shared.batch import BatchError, b64, unb64
from shared.remote import MAX_MESSAGE_BYTES, RemoteError

bp = api_blueprint("remote", __name__, "/api/v1")


class Answered(Exception):
    """The request was answered before its message was read: refused (401/403/429) or over the gateway's budget."""

    def __init__(self, response) -> None:
        super().__init__()
        self.response = response


def remote_limiter() -> RateLimiter:
    """One gateway's heartbeats, configuration fetches and results: a runaway loop gets 429, not the database."""
    found = current_app.extensions.get("balans_remote_limiter")
    if found is None:
        found = current_app.extensions.setdefault("balans_remote_limiter", RateLimiter(
            int(current_app.config["GATEWAY_REMOTE_PER_MINUTE"])))
    return found


def _signed(code: str):
    """The gateway's message once its signature holds. As for batches (views.post_batch): the signature first,
    a forgery counted by the refusal ledger and never spending the gateway's own budget, then that budget."""
    session = db.session()
    signature = unb64(request.headers.get("X-Balans-Signature", ""), "X-Balans-Signature")
    if len(signature) != 64:
        raise IngestError(401, "bad_signature", "an Ed25519 signature is 64 bytes", "X-Balans-Signature")
    body = request_body(MAX_MESSAGE_BYTES)
    refused = refused_screen(session, code, body, signature)
    if refused is not None:
        raise Answered(refused)
    wait = remote_limiter().take(code)
    if wait > 0:
        raise Answered(too_many(f"too many messages from {code}; retry in {wait:.0f} s", wait))
    return session, *verified_message(session, code, body, signature)


def _refused(exc: Exception):
    db.session().rollback()
    if isinstance(exc, Answered):
        return exc.response
    if isinstance(exc, IngestError):
        return jsonify(exc.as_json()), exc.status
    return api_error(400, "invalid", exc.reason, exc.field)


@bp.post("/gateways/<code>/heartbeat")
def heartbeat(code: str):
    try:
        session, gateway, document = _signed(code)
        with db.write_lock():
            answer = record_heartbeat(session, gateway, document)
            session.commit()
    except (Answered, IngestError, BatchError) as exc:
        return _refused(exc)
    return jsonify(answer), 200


@bp.post("/gateways/<code>/config")
def fetch_config(code: str):
    """The gateway asks for a version of its site's configuration: the signed bytes and the org's signature."""
    try:
        session, gateway, document = _signed(code)
        row = config_for(session, gateway, document)
    except (Answered, IngestError, BatchError) as exc:
        return _refused(exc)
    return jsonify({"version": row.version, "body": b64(row.body), "signature": b64(row.signature)}), 200


@bp.post("/gateways/<code>/results")
def post_result(code: str):
    try:
        session, gateway, document = _signed(code)
        with db.write_lock():
            row = record_result(session, gateway, document)
            session.commit()
    except (Answered, IngestError, BatchError) as exc:
        return _refused(exc)
    return jsonify({"status": row.status, "request": row.id}), 200


def _gateway(code: str) -> Gateway | None:
    return db.session().scalar(select(Gateway).where(Gateway.code == code, Gateway.org_id == api_org_id()))


@bp.post("/gateways/<code>/requests")
@api_requires(Action.MANAGE_GATEWAYS)
def create_request(code: str):
    gateway = _gateway(code)
    if gateway is None:
        return api_error(404, "not_found", f"no gateway {code!r} in this organisation", "gateway")
    document = request.get_json(silent=True)
    if not isinstance(document, dict):
        return api_error(400, "invalid", "body must be a JSON object", "body")
    lines = document.get("lines", 100)
    if not isinstance(lines, int) or isinstance(lines, bool):
        return api_error(422, "invalid", "must be a whole number", "lines")
    session = db.session()
    try:
        with db.write_lock():
            row = queue_request(session, gateway, str(document.get("kind", "")), api_actor(), lines)
            session.commit()
    except RemoteError as exc:
        session.rollback()
        return api_error(422, "invalid", exc.reason, exc.field)
    return jsonify(request_json(row, gateway)), 201


@bp.get("/gateways/<code>/requests")
@api_requires(Action.MANAGE_GATEWAYS)
def list_requests(code: str):
    gateway = _gateway(code)
    if gateway is None:
        return api_error(404, "not_found", f"no gateway {code!r} in this organisation", "gateway")
    return jsonify({"requests": requests_of(db.session(), gateway)})


@bp.get("/gateways/<code>/heartbeat")
@api_requires(Action.MANAGE_GATEWAYS)
def gateway_health(code: str):
    gateway = _gateway(code)
    if gateway is None:
        return api_error(404, "not_found", f"no gateway {code!r} in this organisation", "gateway")
    return jsonify({"health": latest_health(db.session(), gateway)})


def _site(code: str) -> Site | None:
    return db.session().scalar(select(Site).where(Site.code == code, Site.org_id == api_org_id()))


@bp.get("/sites/<code>/config")
@api_requires(Action.MANAGE_GATEWAYS)
def show_site_config(code: str):
    site = _site(code)
    if site is None:
        return api_error(404, "not_found", f"no site {code!r} in this organisation", "site")
    latest = latest_version(db.session(), site)
    if latest is not None:
        return jsonify(version_json(latest))
    return jsonify({"version": 0, "document": current_document(db.session(), site)})


@bp.post("/sites/<code>/config")
@api_requires(Action.MANAGE_GATEWAYS)
def set_site_config(code: str):
    """Body ``{"set": {"poll_seconds": "60", "meter.SDM-1.unit": "9"}}``: a new version, signed."""
    site = _site(code)
    if site is None:
        return api_error(404, "not_found", f"no site {code!r} in this organisation", "site")
    document = request.get_json(silent=True)
    changes = document.get("set") if isinstance(document, dict) else None
    if not isinstance(changes, dict):
        return api_error(422, "invalid", "must be an object of key → value", "set")
    session = db.session()
    try:
        with db.write_lock():
            row = new_version(session, site, {str(k): str(v) for k, v in changes.items()}, api_actor())
            session.commit()
    except RemoteError as exc:
        session.rollback()
        return api_error(422, "invalid", exc.reason, exc.field)
    current_app.logger.info("site %s: configuration version %s", site.code, row.version)
    return jsonify(version_json(row)), 201
