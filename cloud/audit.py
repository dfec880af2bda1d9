"""The audit log: every change by a person or a gateway — who, when, what, before → after. Append-only."""

from __future__ import annotations

from sqlalchemy.orm import Session

from cloud.models import AuditLog


def audit(db: Session, org_id: int | None, actor: str, action: str, entity: str = "",
          before: dict | None = None, after: dict | None = None) -> None:
    db.add(AuditLog(org_id=org_id, actor=actor, action=action, entity=entity, before=before, after=after))
