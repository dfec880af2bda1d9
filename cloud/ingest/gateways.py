"""A gateway's life after enrolment: key rotation (the new key signed by the old) and revocation."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.audit import audit
from cloud.ingest.enrolment import EnrolmentError
from cloud.models import Gateway, GatewayKey, utcnow
from shared.batch import BatchError, load_public_key, verify_signature


def current_key(db: Session, gateway: Gateway) -> GatewayKey | None:
    return db.scalar(select(GatewayKey).where(GatewayKey.gateway_id == gateway.id,
                                              GatewayKey.retired_at.is_(None)))


def rotation_refused(gateway: Gateway, reason: str) -> dict:
    return {"org_id": gateway.org_id, "gateway_id": gateway.id, "ts": utcnow(),
            "kind": "security:key_rotation_refused", "detail": {"reason": reason[:200]}}


def rotate_key(db: Session, gateway_code: str, new_public_key: str, signature: bytes) -> Gateway:
    """Replace the gateway's key; ``signature`` is the old key's signature of the new key's PEM bytes."""
    gateway = db.scalar(select(Gateway).where(Gateway.code == gateway_code))
    if gateway is None:
        raise EnrolmentError(401, "unknown_gateway", f"gateway {gateway_code!r} is not enrolled", "gateway")
    if gateway.status == "revoked":
        raise EnrolmentError(403, "revoked_gateway", "a revoked gateway cannot rotate its key",
                             event=rotation_refused(gateway, "revoked"))
    try:
        load_public_key(new_public_key)
        verify_signature(load_public_key(gateway.public_key), new_public_key.encode("ascii"), signature)
    except (BatchError, UnicodeEncodeError) as exc:
        reason = getattr(exc, "reason", "the new key is not ASCII PEM")
        # Someone without the gateway's key tried to put theirs in its place: the org admin must see it.
        raise EnrolmentError(401, "bad_signature", f"rotation refused: {reason}", "signature",
                             event=rotation_refused(gateway, reason)) from exc
    old = current_key(db, gateway)
    if old is not None:
        old.retired_at = utcnow()
    db.add(GatewayKey(gateway_id=gateway.id, public_key=new_public_key))
    audit(db, gateway.org_id, f"gateway:{gateway.code}", "gateway.rotate_key", f"gateway:{gateway.code}",
          {"public_key": gateway.public_key}, {"public_key": new_public_key})
    gateway.public_key = new_public_key
    db.flush()
    return gateway


def revoke(db: Session, gateway: Gateway, actor: str, reason: str = "") -> None:
    """From now on the gateway's batches are refused (and each refusal is shown to the org admin)."""
    before = {"status": gateway.status}
    gateway.status = "revoked"
    key = current_key(db, gateway)
    if key is not None:
        key.retired_at = utcnow()
    audit(db, gateway.org_id, actor, "gateway.revoke", f"gateway:{gateway.code}", before,
          {"status": "revoked", "reason": reason})
