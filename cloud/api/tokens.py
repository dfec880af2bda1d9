"""API tokens: made by the org admin (page, CLI), shown once, stored as a SHA-256, revoked at will."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.audit import audit
from cloud.clock import utcnow
from cloud.models import ApiToken, Organisation
from cloud.permissions import STAFF, Role

PREFIX = "blns_"  # so a token pasted into the wrong place is recognisable (and secret scanners can find it)
TOKEN_ROLES = tuple(role.value for role in Role if role in STAFF and role is not Role.OPERATOR)


class TokenError(ValueError):
    """A token that cannot be made as asked (its message says why)."""


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def make_token(db: Session, org: Organisation, name: str, role: str, actor: str) -> tuple[ApiToken, str]:
    """A new token for ``org`` acting as ``role``; returns the row and the token (the only time it is seen)."""
    name = name.strip()
    if not name or len(name) > 100:
        raise TokenError("name the token (what it is for), at most 100 characters")
    if role not in TOKEN_ROLES:
        raise TokenError(f"role must be one of {', '.join(TOKEN_ROLES)}, got {role!r}")
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(org_id=org.id, name=name, role=role, token_hash=digest(token), created_by=actor)
    db.add(row)
    db.flush()
    audit(db, org.id, actor, "api_token.create", f"api_token:{row.id}", None, {"name": name, "role": role})
    return row, token


def revoke_token(db: Session, row: ApiToken, actor: str) -> None:
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit(db, row.org_id, actor, "api_token.revoke", f"api_token:{row.id}", None, {"name": row.name})


def find_token(db: Session, token: str) -> ApiToken | None:
    """The live token row for ``token`` (None when unknown or revoked)."""
    if not token.startswith(PREFIX) or len(token) > 100:
        return None
    row = db.scalar(select(ApiToken).where(ApiToken.token_hash == digest(token)))
    return row if row is not None and row.revoked_at is None else None


def org_tokens(db: Session, org_id: int) -> list[ApiToken]:
    return list(db.scalars(select(ApiToken).where(ApiToken.org_id == org_id).order_by(ApiToken.id)))
