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
from shared.calendar import iso_utc
from shared.site_document import SiteDocument, SiteDocumentError, parse_site_document


class EnrolmentError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str = "", event: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.event = event  # a security event the org admin must see, written even though the request fails

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


def enrol_gateway(db: Session, token: str, gateway_code: str, public_key: str, site_document: object) -> Gateway:
    """Bind a gateway's key and its site's topology to the token's site (caller commits).

    ``site_document`` is the decoded JSON the gateway sent (docs/site-document.md). Every refusal comes before
    anything is written, so a refused enrolment leaves the token usable for a corrected retry.
    """
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
    try:
        document = parse_site_document(site_document, "site")
    except SiteDocumentError as exc:
        raise EnrolmentError(422, "invalid", exc.reason, exc.field) from exc
    if db.scalar(select(Gateway).where(Gateway.code == gateway_code)) is not None:
        raise EnrolmentError(409, "gateway_exists", f"gateway {gateway_code!r} is already enrolled", "gateway")
    site = db.get(Site, record.site_id)
    apply_site_document(db, site, document)
    gateway = Gateway(org_id=site.org_id, site_id=site.id, code=gateway_code, public_key=public_key)
    db.add(gateway)
    db.flush()
    db.add(GatewayKey(gateway_id=gateway.id, public_key=public_key))
    record.used_at = utcnow()
    record.gateway_id = gateway.id
    audit(db, site.org_id, f"gateway:{gateway_code}", "gateway.enrol", f"site:{site.code}", None,
          {"gateway": gateway_code, "lines": len(document.lines), "meters": len(document.meters),
           **({"created": iso_utc(document.created)} if document.created else {})})
    return gateway


def apply_site_document(db: Session, site: Site, document: SiteDocument) -> None:
    """Create or update the site's lines and meters (and link subscriber meters to accounts)."""
    lines = {line.number: line for line in db.scalars(select(Line).where(Line.site_id == site.id))}
    for spec in document.lines:
        if spec.number not in lines:
            lines[spec.number] = Line(org_id=site.org_id, site_id=site.id, number=spec.number)
            db.add(lines[spec.number])
        lines[spec.number].name = spec.name
    db.flush()
    accounts = {a.number: a for a in db.scalars(select(Account).where(Account.org_id == site.org_id))}
    meters = {m.code: m for m in db.scalars(select(Meter).where(Meter.site_id == site.id))}
    for spec in document.meters:
        account = None
        if spec.account is not None:
            account = accounts.get(spec.account)
            if account is None:
                account = accounts[spec.account] = Account(org_id=site.org_id, site_id=site.id, number=spec.account)
                db.add(account)
                db.flush()
        meter = meters.get(spec.id) or Meter(org_id=site.org_id, site_id=site.id, code=spec.id, installed_at=utcnow())
        meter.profile = spec.profile
        meter.role = spec.role.value  # the column holds the plain text
        meter.line_id = lines[spec.line].id if spec.line is not None else None
        meter.account_id = account.id if account else None
        if spec.id not in meters:
            db.add(meter)
            meters[spec.id] = meter
    db.flush()
