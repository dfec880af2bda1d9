"""The gateway API under /api/v1/: enrolment, key rotation and batch ingestion, JSON errors, an OpenAPI document."""

from __future__ import annotations

import zlib

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from cloud import db
from cloud.ingest.enrolment import EnrolmentError, enrol_gateway
from cloud.ingest.errors import IngestError
from cloud.ingest.gateways import rotate_key
from cloud.ingest.group_writer import BatchWriter
from cloud.ingest.openapi import OPENAPI
from cloud.ingest.rate_limit import RateLimiter
from cloud.ingest.refusals import RefusalLedger
from cloud.ingest.service import ingest_batch
from cloud.ingest.site_config import org_key
from shared.batch import BatchError, unb64

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def error(status: int, code: str, message: str, field: str = ""):
    body = {"error": code, "message": message}
    if field:
        body["field"] = field
    return jsonify(body), status


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    return error(exc.code or 500, exc.name.lower().replace(" ", "_"), exc.description or exc.name)


def request_body(limit: int) -> bytes:
    """The raw body, gunzipped when sent with Content-Encoding: gzip, never larger than ``limit``."""
    raw = request.get_data(cache=False)
    encoding = request.headers.get("Content-Encoding", "identity").lower()
    if encoding == "identity":
        body = raw
    elif encoding == "gzip":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            body = inflater.decompress(raw, limit + 1)
        except zlib.error as exc:
            raise IngestError(400, "bad_encoding", f"not valid gzip: {exc}", "body") from exc
        if not inflater.eof and len(body) <= limit:
            raise IngestError(400, "bad_encoding", "gzip stream is truncated", "body")
    else:
        raise IngestError(415, "bad_encoding", f"Content-Encoding {encoding!r} is not supported; use gzip", "body")
    if len(body) > limit:
        raise IngestError(413, "too_large", f"batch over {limit} bytes", "body")
    return body


def limiter() -> RateLimiter:
    found = current_app.extensions.get("balans_rate_limiter")
    if found is None:
        found = current_app.extensions["balans_rate_limiter"] = RateLimiter(
            int(current_app.config["GATEWAY_RATE_PER_MINUTE"]))
    return found


def batch_writer() -> BatchWriter | None:
    """SQLite: the app's group-commit writer (one writer at a time); PostgreSQL: none, each request commits."""
    engine = current_app.extensions["balans_engine"]
    if engine.dialect.name != "sqlite":
        return None
    found = current_app.extensions.get("balans_batch_writer")
    if found is None:
        found = current_app.extensions.setdefault(
            "balans_batch_writer", BatchWriter(current_app.extensions["balans_sessions"], db.write_lock()))
    return found


@bp.post("/batches")
def post_batch():
    """Signature first (cheap, cached key), then the gateway's own rate bucket, then the batch: a forgery in a
    gateway's name spends neither its budget nor, past its sender's refusal budget, a write (refusals.py)."""
    gateway = request.headers.get("X-Balans-Gateway", "")
    if not gateway:
        return error(401, "unknown_gateway", "header X-Balans-Gateway is missing", "X-Balans-Gateway")
    session = db.session()
    try:
        signature = unb64(request.headers.get("X-Balans-Signature", ""), "X-Balans-Signature")
        if len(signature) != 64:
            raise IngestError(401, "bad_signature", "an Ed25519 signature is 64 bytes", "X-Balans-Signature")
        body = request_body(int(current_app.config["MAX_BATCH_BYTES"]))
        refused = refused_screen(session, gateway, body, signature)
        if refused is not None:
            return refused
        wait = limiter().take(gateway)
        if wait > 0:
            return too_many(f"too many batches from {gateway}; retry in {wait:.0f} s", wait)
        result = ingest_batch(session, gateway, body, signature, batch_writer())
    except IngestError as exc:
        session.rollback()
        return jsonify(exc.as_json()), exc.status
    except BatchError as exc:
        session.rollback()
        return error(400, exc.code, exc.reason, exc.field)
    status = 201 if result.status == "stored" else 200
    return jsonify({"status": result.status, "seq": result.seq, "hash": result.hash,
                    "gap_before": result.gap_before}), status


def refused_screen(session, gateway: str, body: bytes, signature: bytes):
    """None when the gateway signed the batch; else the refusal (401/403, or 429 once the sender has been
    refused too often), its security event counted."""
    ledger = refusals()
    screened = ledger.screen(session, gateway, body, signature)
    if screened.refusal is None:
        return None
    if screened.event is not None:
        ledger.record(session, screened.event)
    wait = ledger.answer_wait(request.remote_addr or "")
    if wait > 0:
        return too_many(f"too many refused requests from this address; retry in {wait:.0f} s", wait)
    status, code, message, field = screened.refusal
    return error(status, code, message, field)


def too_many(message: str, wait: float):
    response, status = error(429, "rate_limited", message)
    response.headers["Retry-After"] = str(max(1, round(wait)))
    return response, status


def refusals() -> RefusalLedger:
    found = current_app.extensions.get("balans_refusals")
    if found is None:
        found = current_app.extensions.setdefault("balans_refusals", RefusalLedger(
            int(current_app.config["GATEWAY_REFUSALS_PER_MINUTE"]),
            int(current_app.config["REFUSAL_EVENTS_PER_MINUTE"]), write_lock=db.write_lock()))
    return found


@bp.post("/enrol")
def enrol():
    document = request.get_json(silent=True)
    if not isinstance(document, dict):
        return error(400, "invalid", "body must be a JSON object", "body")
    for field in ("token", "gateway", "public_key", "site"):
        if field not in document:
            return error(422, "invalid", "is required", field)
    session = db.session()
    try:
        gateway = enrol_gateway(session, str(document["token"]), str(document["gateway"]),
                                str(document["public_key"]), document["site"])
        org_public_key = org_key(session, gateway.org_id).public_key  # what the site configurations are signed with
        session.commit()
    except EnrolmentError as exc:
        session.rollback()
        return jsonify(exc.as_json()), exc.status
    return jsonify({"status": "enrolled", "gateway": gateway.code, "site_id": gateway.site_id,
                    "org_public_key": org_public_key}), 201


@bp.post("/gateways/<code>/key")
def rotate_gateway_key(code: str):
    document = request.get_json(silent=True)
    if not isinstance(document, dict):
        return error(400, "invalid", "body must be a JSON object", "body")
    for field in ("public_key", "signature"):
        if not isinstance(document.get(field), str):
            return error(422, "invalid", "is required", field)
    session = db.session()
    try:
        gateway = rotate_key(session, code, document["public_key"], unb64(document["signature"]))
        session.commit()
    except EnrolmentError as exc:
        session.rollback()
        return refused_rotation(session, exc)
    except BatchError as exc:
        return error(400, exc.code, exc.reason, exc.field)
    return jsonify({"status": "rotated", "gateway": gateway.code}), 200


def refused_rotation(session, exc: EnrolmentError):
    """A refused key rotation goes the way of a forged batch (refused_screen): its security event counted by the
    ledger (one event with a count, under the write budget), and past the sender's refusal budget a 429."""
    ledger = refusals()
    if exc.event is not None:
        ledger.record(session, exc.event)
    wait = ledger.answer_wait(request.remote_addr or "")
    if wait > 0:
        return too_many(f"too many refused requests from this address; retry in {wait:.0f} s", wait)
    return jsonify(exc.as_json()), exc.status


@bp.get("/openapi.json")
def openapi():
    return jsonify(OPENAPI)
