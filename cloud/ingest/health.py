"""Heartbeats and remote diagnostics (docs/remote.md): what a gateway says of its health, signed with its key;
the requests the cloud queues for it (``log``, ``reread``), handed out in the heartbeat's answer and answered by a
signed result. The gateway only ever calls out: nothing connects to it.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.audit import audit
from cloud.ingest.errors import IngestError
from cloud.ingest.site_config import latest_version
from cloud.models import Gateway, GatewayHealth, GatewayRequest, Site, SiteConfigVersion, utcnow
from cloud.updates.rollout import offer_for, record_report
from cloud.updates.trust import root_offer
from shared.batch import BatchError, load_public_key, verify_signature
from shared.calendar import as_utc, iso_utc, parse_iso
from shared.remote import MAX_LOG_LINES, REQUEST_KINDS, RemoteError, parse_message


def verified_message(db: Session, code: str, body: bytes, signature: bytes) -> tuple[Gateway, dict[str, Any]]:
    """The gateway ``code`` and its message, once its signature is checked (401/403/400 otherwise)."""
    gateway = db.scalar(select(Gateway).where(Gateway.code == code))
    if gateway is None:
        raise IngestError(401, "unknown_gateway", f"gateway {code!r} is not enrolled", "gateway")
    if gateway.status == "revoked":
        raise IngestError(403, "revoked_gateway", "this gateway was revoked", "gateway")
    try:
        verify_signature(load_public_key(gateway.public_key), body, signature)
    except BatchError as exc:
        raise IngestError(401, "bad_signature", exc.reason, "X-Balans-Signature") from exc
    try:
        document = parse_message(body)
    except RemoteError as exc:
        raise IngestError(400, "invalid", exc.reason, exc.field) from exc
    if document["gateway"] != code:
        raise IngestError(400, "invalid", "is not the gateway of the URL", "gateway")
    return gateway, document


INTEGER_MAX = 2**31 - 1  # the columns' integer


def whole(value: Any, field: str, least: int) -> int:
    """A whole number the columns can hold: ``least`` … 2^31 − 1 (a bool is not one); 422 naming the field."""
    if not isinstance(value, int) or isinstance(value, bool) or not least <= value <= INTEGER_MAX:
        raise IngestError(422, "invalid", f"must be a whole number {least} … {INTEGER_MAX}", field)
    return value


def record_heartbeat(db: Session, gateway: Gateway, document: dict[str, Any]) -> dict[str, Any]:
    """Store the heartbeat and answer it: the measured clock offset, the requests waiting, the newest
    configuration version of the site (caller commits)."""
    number = whole(document.get("n"), "n", 1)
    for key in ("health", "config"):
        if not isinstance(document.get(key), dict):
            raise IngestError(422, "invalid", "is required (an object)", key)
    version = whole(document["config"].get("version"), "config.version", 0)
    try:
        sent = parse_iso(document["sent"])
    except ValueError as exc:
        raise IngestError(422, "invalid", "is not an ISO time", "sent") from exc
    row = db.get(GatewayHealth, gateway.id)
    if row is not None and number <= int(row.document.get("n", 0)):
        raise IngestError(409, "replayed", f"heartbeat {number} is not newer than {row.document.get('n')}", "n")
    now = utcnow()
    offset = round((sent - as_utc(now)).total_seconds())
    if row is None:
        row = GatewayHealth(gateway_id=gateway.id, org_id=gateway.org_id)
        db.add(row)
    before = row.config_version if row.document is not None else None
    row.received_at, row.sent_at, row.clock_offset_s = now, sent.replace(tzinfo=None), offset
    row.config_version, row.document = version, document
    if before is not None and before != version:
        audit(db, gateway.org_id, f"gateway:{gateway.code}", "gateway.config_in_force", f"gateway:{gateway.code}",
              {"version": before}, {"version": version, "last": document["config"].get("last")})
    waiting = db.scalars(select(GatewayRequest).where(GatewayRequest.gateway_id == gateway.id,
                                                      GatewayRequest.status == "queued")
                         .order_by(GatewayRequest.id)).all()
    for request in waiting:
        request.status, request.sent_at = "sent", now
    site = db.get(Site, gateway.site_id)
    latest = latest_version(db, site)
    record_report(db, gateway, document.get("update"))  # software updates: docs/updates.md
    pinned = root_offer(db, gateway, document.get("update"))  # a gateway with no release root pinned gets one
    db.flush()
    answer = {"status": "ok", "clock_offset_s": offset,
              "requests": [{"id": r.id, "kind": r.kind, "params": r.params or {}} for r in waiting],
              "config": {"version": latest.version} if latest is not None else None,
              "update": offer_for(db, gateway, document["health"].get("software_version"))}
    if pinned is not None:
        answer["release_root"] = pinned
    return answer


def config_for(db: Session, gateway: Gateway, document: dict[str, Any]) -> SiteConfigVersion:
    version = whole(document.get("version"), "version", 1)
    row = db.scalar(select(SiteConfigVersion).where(SiteConfigVersion.site_id == gateway.site_id,
                                                    SiteConfigVersion.version == version))
    if row is None:
        raise IngestError(404, "not_found", f"no configuration version {version!r} for this site", "version")
    return row


def record_result(db: Session, gateway: Gateway, document: dict[str, Any]) -> GatewayRequest:
    """A request's answer, once (caller commits)."""
    request = db.get(GatewayRequest, whole(document.get("request"), "request", 1))
    if request is None or request.gateway_id != gateway.id:
        raise IngestError(404, "not_found", "no such request for this gateway", "request")
    if request.status != "sent":
        raise IngestError(409, "already_answered", f"request {request.id} is {request.status}", "request")
    if not isinstance(document.get("ok"), bool):
        raise IngestError(422, "invalid", "must be true or false", "ok")
    if not isinstance(document.get("result"), dict):
        raise IngestError(422, "invalid", "is required (an object)", "result")
    request.status = "done" if document["ok"] else "failed"
    request.done_at, request.result = utcnow(), document["result"]
    db.flush()
    return request


def queue_request(db: Session, gateway: Gateway, kind: str, actor: str, lines: int = 100) -> GatewayRequest:
    """Queue ``log`` (its last ``lines`` log lines) or ``reread`` (read the meters now) for the gateway."""
    if kind not in REQUEST_KINDS:
        raise RemoteError(f"must be one of {', '.join(REQUEST_KINDS)}", "kind")
    if gateway.status == "revoked":
        raise RemoteError("the gateway is revoked", "gateway")
    if not 1 <= lines <= MAX_LOG_LINES:
        raise RemoteError(f"must be 1 … {MAX_LOG_LINES}", "lines")
    request = GatewayRequest(org_id=gateway.org_id, gateway_id=gateway.id, kind=kind,
                             params={"lines": lines} if kind == "log" else {}, created_by=actor)
    db.add(request)
    db.flush()
    audit(db, gateway.org_id, actor, "gateway.request", f"gateway:{gateway.code}", None,
          {"request": request.id, "kind": kind, **request.params})
    return request


def requests_of(db: Session, gateway: Gateway, limit: int = 50) -> list[dict[str, Any]]:
    rows = db.scalars(select(GatewayRequest).where(GatewayRequest.gateway_id == gateway.id)
                      .order_by(GatewayRequest.id.desc()).limit(limit))
    return [request_json(row, gateway) for row in rows]


def request_json(row: GatewayRequest, gateway: Gateway) -> dict[str, Any]:
    def when(ts):
        return iso_utc(ts) if ts is not None else None
    return {"id": row.id, "gateway": gateway.code, "kind": row.kind, "params": row.params or {}, "status": row.status,
            "created_at": when(row.created_at), "created_by": row.created_by, "sent_at": when(row.sent_at),
            "done_at": when(row.done_at), "result": row.result}


def latest_health(db: Session, gateway: Gateway) -> dict[str, Any] | None:
    """The gateway's last heartbeat for a page or the API: health, the clock offset the cloud measured, the
    configuration version in force and the last attempt to change it; None before the first heartbeat."""
    row = db.get(GatewayHealth, gateway.id)
    if row is None:
        return None
    health = row.document.get("health", {})
    config = row.document.get("config", {})
    return {
        "gateway": gateway.code,
        "received_at": iso_utc(row.received_at),
        "sent_at": iso_utc(row.sent_at),
        "age_s": round((utcnow() - row.received_at).total_seconds()),
        "clock_offset_s": row.clock_offset_s,
        "backlog": health.get("backlog"),
        "disk_free_bytes": health.get("disk_free_bytes"),
        "meters_answering": health.get("meters_answering"),
        "meters_configured": health.get("meters_configured"),
        "software_version": health.get("software_version"),
        "uptime_s": health.get("uptime_s"),
        "clock_state": health.get("clock_state"),
        "poll_seconds": health.get("poll_seconds"),
        "config_version": row.config_version,
        "config_last": config.get("last"),
    }


def dumps(document: dict) -> str:
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode()
