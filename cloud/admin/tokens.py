"""The org admin's keys: enrolment tokens for gateways (issued in cloud/ingest/enrolment.py; listed and cancelled
here) and the command line that uses one on the gateway. API tokens are cloud/api/tokens.py."""

from __future__ import annotations

import shlex

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.audit import audit
from cloud.clock import utcnow
from cloud.models import EnrolmentToken, Site

ENROL_HOURS = (24, 72, 168)  # the lifetimes offered on the page


def provision_command(token: str, cloud_url: str) -> str:
    """What the installer types on the gateway (provisioning/commands.py, ``balans provision enroll``)."""
    return (f"balans provision enroll --config /etc/balans/gateway.toml --cloud {shlex.quote(cloud_url.rstrip('/'))}"
            f" --token {shlex.quote(token)}")


def unused_tokens(db: Session, org_id: int) -> list[tuple[EnrolmentToken, str]]:
    """The organisation's enrolment tokens not used, not expired (nor cancelled), with their site's code."""
    return list(db.execute(
        select(EnrolmentToken, Site.code).join(Site, Site.id == EnrolmentToken.site_id)
        .where(EnrolmentToken.org_id == org_id, EnrolmentToken.used_at.is_(None),
               EnrolmentToken.expires_at > utcnow())
        .order_by(EnrolmentToken.expires_at)).all())


def cancel_token(db: Session, row: EnrolmentToken, actor: str) -> None:
    """The token stops working now: it expires at once (the row stays, as the record that it was issued)."""
    now = utcnow()
    if row.used_at is None and row.expires_at > now:
        before = row.expires_at
        row.expires_at = now
        site = db.get(Site, row.site_id)
        audit(db, row.org_id, actor, "enrolment_token.cancel", f"site:{site.code}", {"expires_at": before.isoformat()},
              {"expires_at": now.isoformat()})


def find_enrolment_token(db: Session, org_id: int, token_id: int) -> EnrolmentToken | None:
    row = db.get(EnrolmentToken, token_id)
    return row if row is not None and row.org_id == org_id else None
