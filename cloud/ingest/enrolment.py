"""Gateway enrolment: an org admin issues a one-time, expiring token for a site; the gateway
presents it with its public key and the site's topology, and the cloud binds them.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.audit import audit
from cloud.models import Account, EnrolmentToken, Gateway, GatewayKey, Line, Meter, Site, utcnow
from shared.batch import BatchError, load_public_key

ROLES = ("station_input", "feeder", "subscriber")


class EnrolmentError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str = ""):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field

    def as_json(self) -> dict:
        return {"error": self.code, "message": self.message, **({"field": self.field} if self.field else {})}


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(db: Session, site: Site, hours: int = 72, actor: str = "system") -> str:
    """A one-time enrolment token for ``site``; only its hash is stored."""
    token = secrets.token_urlsafe(24)
    db.add(EnrolmentToken(org_id=site.org_id, site_id=site.id, token_hash=_digest(token),
                          expires_at=utcnow() + timedelta(hours=hours)))
    audit(db, site.org_id, actor, "enrolment_token.issue", f"site:{site.code}", None, {"hours": hours})
    return token


def enrol_gateway(db: Session, token: str, gateway_code: str, public_key: str, site_document: dict) -> Gateway:
    """Bind a gateway's key and its site's topology to the token's site (caller commits)."""
    record = db.scalar(select(EnrolmentToken).where(EnrolmentToken.token_hash == _digest(token or "")))
    if record is None:
        raise EnrolmentError(403, "bad_token", "enrolment token is not known", "token")
    if record.used_at is not None:
        raise EnrolmentError(403, "token_used", "enrolment token was already used", "token")
    if record.expires_at < utcnow():
        raise EnrolmentError(403, "token_expired", "enrolment token has expired; ask for a new one", "token")
    try:
        load_public_key(public_key)
    except BatchError as exc:
        raise EnrolmentError(422, "bad_public_key", exc.reason, "public_key") from exc
    if not gateway_code or len(gateway_code) > 60:
        raise EnrolmentError(422, "invalid", "gateway id must be 1–60 characters", "gateway")
    if db.scalar(select(Gateway).where(Gateway.code == gateway_code)) is not None:
        raise EnrolmentError(409, "gateway_exists", f"gateway {gateway_code!r} is already enrolled", "gateway")
    site = db.get(Site, record.site_id)
    apply_site_document(db, site, site_document)
    gateway = Gateway(org_id=site.org_id, site_id=site.id, code=gateway_code, public_key=public_key)
    db.add(gateway)
    db.flush()
    db.add(GatewayKey(gateway_id=gateway.id, public_key=public_key))
    record.used_at = utcnow()
    record.gateway_id = gateway.id
    audit(db, site.org_id, f"gateway:{gateway_code}", "gateway.enrol", f"site:{site.code}", None,
          {"gateway": gateway_code, "meters": len(site_document.get("meters", []))})
    return gateway


def apply_site_document(db: Session, site: Site, document: dict) -> None:
    """Create or update the site's lines and meters (and link subscriber meters to accounts)."""
    if not isinstance(document, dict):
        raise EnrolmentError(422, "invalid", "site must be an object", "site")
    lines = {line.number: line for line in db.scalars(select(Line).where(Line.site_id == site.id))}
    for i, spec in enumerate(document.get("lines", [])):
        number = str(spec.get("number", ""))
        if not number:
            raise EnrolmentError(422, "invalid", "line number is missing", f"site.lines[{i}].number")
        if number not in lines:
            lines[number] = Line(org_id=site.org_id, site_id=site.id, number=number)
            db.add(lines[number])
        lines[number].name = str(spec.get("name", number))
    db.flush()
    accounts = {a.number: a for a in db.scalars(select(Account).where(Account.org_id == site.org_id))}
    meters = {m.code: m for m in db.scalars(select(Meter).where(Meter.site_id == site.id))}
    for i, spec in enumerate(document.get("meters", [])):
        where = f"site.meters[{i}]"
        code, role = str(spec.get("id", "")), spec.get("role")
        if not code:
            raise EnrolmentError(422, "invalid", "meter id is missing", f"{where}.id")
        if role not in ROLES:
            raise EnrolmentError(422, "invalid", f"role must be one of {', '.join(ROLES)}", f"{where}.role")
        line = spec.get("line")
        if role != "station_input" and str(line) not in lines:
            raise EnrolmentError(422, "invalid", f"line {line!r} is not among the site's lines", f"{where}.line")
        account = None
        if spec.get("account"):
            number = str(spec["account"])
            account = accounts.get(number)
            if account is None:
                account = accounts[number] = Account(org_id=site.org_id, site_id=site.id, number=number)
                db.add(account)
                db.flush()
        meter = meters.get(code) or Meter(org_id=site.org_id, site_id=site.id, code=code, installed_at=utcnow())
        meter.profile = str(spec.get("profile", ""))
        meter.role = role
        meter.line_id = lines[str(line)].id if line is not None and str(line) in lines else None
        meter.account_id = account.id if account else None
        if code not in meters:
            db.add(meter)
            meters[code] = meter
    db.flush()
